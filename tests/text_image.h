/*
 * text_image.h - render lines of text into an image with leptonica's
 * compiled-in bitmap font, for the OCR tests and tests/gen_text_image.
 *
 * No font files and no downloads: bmfCreate(NULL, size) builds the font from
 * bitmaps compiled into leptonica (>= 1.74). Only printable ASCII (32..126)
 * can be drawn; anything else is refused rather than silently dropped, so a
 * test never compares OCR output against text that was not in the image.
 */
#ifndef RM_TEXT_IMAGE_H
#define RM_TEXT_IMAGE_H

#include <stddef.h>
#include <leptonica/allheaders.h>

/*
 * Defaults chosen by measurement with tests/test_ocr (24 lines + the same as
 * a paragraph, Tesseract 5.3 LSTM, eng): leptonica's font size 10 is drawn
 * for 300 ppi with an x-height of 20 px. Scaled 1x, 1.5x and 2x Tesseract
 * read 100% of the words, at 3x (x-height 60 px) it starts misreading
 * ("tootball"); time per line grows with the scale (~29, 35, 44, 66 ms).
 * 1.5x puts the x-height at 30 px, mid-way in the range Tesseract reads
 * best, and the linear interpolation of the upscale turns the 1-bit glyph
 * staircase into smooth grey edges, like a scan or a screenshot.
 */
#define RM_TEXT_IMAGE_FONT_SIZE 10
#define RM_TEXT_IMAGE_SCALE 1.5f

/*
 * Render nlines lines, black on white, 8 bits per pixel, one line of text per
 * entry. font_size is one of leptonica's sizes 4, 6, ..., 20; scale >= 1.
 * Returns a new PIX (pixDestroy it), or NULL with a message in err.
 */
PIX *rm_text_image_render(const char *const *lines, size_t nlines,
                          int font_size, float scale,
                          char *err, size_t errlen);

/* Leptonica format (IFF_PNG, ...) for a file name's extension: .png .jpg
 * .jpeg .tif .tiff .pnm .pgm; IFF_UNKNOWN otherwise. */
int rm_text_image_format_for_path(const char *path);

/*
 * Encode pix in a format from rm_text_image_format_for_path() (IFF_TIFF is
 * written LZW-compressed, JPEG at quality 90). Returns 0 with a malloc'ed
 * buffer in *data (free() it), or -1.
 */
int rm_text_image_encode(PIX *pix, int format, l_uint8 **data, size_t *size);

#endif
