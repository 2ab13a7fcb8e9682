/*
 * gen_text_image - render lines of text into an image file, for trying the
 * OCR handler without looking for a scanned page:
 *
 *     gen_text_image OUT.png "line of text" [more lines...]
 *
 * The format follows OUT's extension: .png .jpg/.jpeg .tif/.tiff .pnm/.pgm.
 * For a TIFF, an argument "--page" starts a new page: a multi-page TIFF
 * (the OCR handler streams those page by page, docs/streaming.md).
 * Uses leptonica's compiled-in bitmap font, so it needs no font files and no
 * download. Only printable ASCII can be drawn.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/text_image.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s OUT.{png,jpg,tif,pnm} \"line of text\" [more lines...]\n",
                argv[0]);
        return 2;
    }
    const char *out = argv[1];
    int format = rm_text_image_format_for_path(out);
    if (format == IFF_UNKNOWN) {
        fprintf(stderr, "%s: %s: unknown extension (use .png, .jpg, .tif or .pnm)\n",
                argv[0], out);
        return 2;
    }
    /* Leptonica reports its own errors on stderr too; ours are enough. */
    setMsgSeverity(L_SEVERITY_NONE);

    char err[256];
    int pages = 0;
    for (int i = 2; i < argc; i++)
        pages += strcmp(argv[i], "--page") == 0;
    if (pages && format == IFF_TIFF) {
        /* One page per group of lines, appended to the file. */
        int first = 2, page = 0;
        for (int i = 2; i <= argc; i++) {
            if (i < argc && strcmp(argv[i], "--page") != 0)
                continue;
            if (i > first) {
                PIX *p = rm_text_image_render((const char *const *)argv + first, (size_t)(i - first),
                                              RM_TEXT_IMAGE_FONT_SIZE, RM_TEXT_IMAGE_SCALE, err, sizeof err);
                if (!p || pixWriteTiff(out, p, IFF_TIFF_LZW, page++ ? "a" : "w") != 0) {
                    fprintf(stderr, "%s: %s: %s\n", argv[0], out, p ? "cannot write the TIFF page" : err);
                    pixDestroy(&p);
                    return 1;
                }
                pixDestroy(&p);
            }
            first = i + 1;
        }
        return 0;
    }
    PIX *pix = rm_text_image_render((const char *const *)argv + 2,
                                    (size_t)(argc - 2), RM_TEXT_IMAGE_FONT_SIZE,
                                    RM_TEXT_IMAGE_SCALE, err, sizeof err);
    if (!pix) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        return 1;
    }
    l_uint8 *data;
    size_t size;
    if (rm_text_image_encode(pix, format, &data, &size) != 0) {
        fprintf(stderr, "%s: cannot encode the image for %s\n", argv[0], out);
        pixDestroy(&pix);
        return 1;
    }
    pixDestroy(&pix);

    FILE *f = fopen(out, "wb");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], out, strerror(errno));
        free(data);
        return 1;
    }
    size_t n = fwrite(data, 1, size, f);
    int werr = ferror(f);
    free(data);
    if (fclose(f) != 0 || n != size || werr) {
        fprintf(stderr, "%s: %s: write failed: %s\n", argv[0], out,
                strerror(errno ? errno : EIO));
        remove(out);
        return 1;
    }
    return 0;
}
