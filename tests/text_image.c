/*
 * text_image.c - see text_image.h.
 */
#include "tests/text_image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* White border around the text, in pixels before scaling. Tesseract's page
 * layout analysis drops components that touch the image edge, and its line
 * finder wants some background above and below a line. */
#define MARGIN 20

PIX *rm_text_image_render(const char *const *lines, size_t nlines,
                          int font_size, float scale,
                          char *err, size_t errlen)
{
    if (nlines == 0) {
        snprintf(err, errlen, "no text to render");
        return NULL;
    }
    if (font_size < 4 || font_size > 20 || font_size % 2 != 0) {
        snprintf(err, errlen, "font size %d: leptonica has 4, 6, ..., 20",
                 font_size);
        return NULL;
    }
    if (!(scale >= 1.0f && scale <= 8.0f)) {
        snprintf(err, errlen, "scale %.2f: use 1 to 8", (double)scale);
        return NULL;
    }
    for (size_t i = 0; i < nlines; i++)
        for (const unsigned char *p = (const unsigned char *)lines[i]; *p; p++)
            if (*p < 32 || *p > 126) {
                snprintf(err, errlen,
                         "line %zu: byte 0x%02x is not printable ASCII "
                         "(the built-in font has only ASCII 32..126)",
                         i + 1, *p);
                return NULL;
            }

    /* NULL directory: the font comes from bitmaps compiled into leptonica. */
    L_BMF *bmf = bmfCreate(NULL, font_size);
    if (!bmf) {
        snprintf(err, errlen, "leptonica could not build its font of size %d",
                 font_size);
        return NULL;
    }

    l_int32 maxw = 0;
    for (size_t i = 0; i < nlines; i++) {
        l_int32 w = 0;
        if (lines[i][0] && bmfGetStringWidth(bmf, lines[i], &w) != 0) {
            bmfDestroy(&bmf);
            snprintf(err, errlen, "cannot measure line %zu", i + 1);
            return NULL;
        }
        if (w > maxw)
            maxw = w;
    }
    /* The baseline offset of a glyph is measured from the top of the line box;
     * the deepest of the three character groups is where every glyph of a line
     * sits on one baseline. */
    l_int32 base = bmf->baseline1;
    if (bmf->baseline2 > base)
        base = bmf->baseline2;
    if (bmf->baseline3 > base)
        base = bmf->baseline3;
    l_int32 pitch = bmf->lineheight + bmf->vertlinesep;
    l_int32 width = maxw + 2 * MARGIN;
    l_int32 height = (l_int32)nlines * pitch - bmf->vertlinesep + 2 * MARGIN;
    if (maxw > 30000 || nlines > 1000) {
        bmfDestroy(&bmf);
        snprintf(err, errlen, "text too large for one image");
        return NULL;
    }

    /* 8 bpp so that scaling interpolates (a 1 bpp image would only be pixel
     * replicated, keeping its staircase edges) and so JPEG can encode it. */
    PIX *pix = pixCreate(width, height, 8);
    if (!pix) {
        bmfDestroy(&bmf);
        snprintf(err, errlen, "out of memory for a %dx%d image", width, height);
        return NULL;
    }
    pixSetAll(pix); /* all ones: white */
    for (size_t i = 0; i < nlines; i++) {
        if (!lines[i][0])
            continue;
        l_int32 overflow = 0;
        if (pixSetTextline(pix, bmf, lines[i], 0 /* black */, MARGIN,
                           MARGIN + (l_int32)i * pitch + base, NULL,
                           &overflow) != 0 || overflow) {
            pixDestroy(&pix);
            bmfDestroy(&bmf);
            snprintf(err, errlen, "cannot draw line %zu", i + 1);
            return NULL;
        }
    }
    bmfDestroy(&bmf);
    /* The font is drawn for 300 ppi; say so, so Tesseract does not guess. */
    pixSetResolution(pix, 300, 300);

    if (scale != 1.0f) {
        PIX *scaled = pixScale(pix, scale, scale);
        pixDestroy(&pix);
        if (!scaled) {
            snprintf(err, errlen, "scaling by %.2f failed", (double)scale);
            return NULL;
        }
        pix = scaled;
        pixSetResolution(pix, (l_int32)(300 * scale), (l_int32)(300 * scale));
    }
    return pix;
}

int rm_text_image_format_for_path(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/'))
        return IFF_UNKNOWN;
    dot++;
    if (strcasecmp(dot, "png") == 0)
        return IFF_PNG;
    if (strcasecmp(dot, "jpg") == 0 || strcasecmp(dot, "jpeg") == 0)
        return IFF_JFIF_JPEG;
    if (strcasecmp(dot, "tif") == 0 || strcasecmp(dot, "tiff") == 0)
        return IFF_TIFF;
    if (strcasecmp(dot, "pnm") == 0 || strcasecmp(dot, "pgm") == 0)
        return IFF_PNM;
    return IFF_UNKNOWN;
}

int rm_text_image_encode(PIX *pix, int format, l_uint8 **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    l_ok r;
    switch (format) {
    case IFF_PNG:
        r = pixWriteMemPng(data, size, pix, 0.0f);
        break;
    case IFF_JFIF_JPEG:
        r = pixWriteMemJpeg(data, size, pix, 90, 0);
        break;
    case IFF_TIFF:
        /* Uncompressed TIFF of a page is big; LZW is lossless and universal. */
        r = pixWriteMem(data, size, pix, IFF_TIFF_LZW);
        break;
    case IFF_PNM:
        r = pixWriteMem(data, size, pix, IFF_PNM);
        break;
    default:
        return -1;
    }
    if (r != 0 || !*data) {
        free(*data);
        *data = NULL;
        *size = 0;
        return -1;
    }
    return 0;
}
