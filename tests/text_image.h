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
 * Defaults chosen by measurement (see text_image.c): leptonica's font size
 * 10 is drawn for 300 ppi (x-height ~20 px), scaled 2x with linear
 * interpolation so the 1-bit glyph edges become smooth grey ramps.
 */
#define RM_TEXT_IMAGE_FONT_SIZE 10
#define RM_TEXT_IMAGE_SCALE 2.0f

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
