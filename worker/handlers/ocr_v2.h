/* ocr_v2.h - the v2 inference request of the ocr built-in, decoded (JSON and
 * base64), on its own so that tests/fuzz can reach it without Tesseract. */
#ifndef RM_OCR_V2_H
#define RM_OCR_V2_H

#include <stddef.h>

#include <jansson.h>

/*
 * The image of a v2 inference request ({"inputs":[{"name":"image",
 * "datatype":"BYTES","shape":[1],"data":["<base64>"]}]}). Returns 0 with
 * *img (malloc'd: free it), *len and *root (json_decref it; its "id" is the
 * request's), or an HTTP status (400, or 500 out of memory) with the reason
 * in err and nothing to free.
 */
int rm_ocr_v2_decode(const void *body, size_t body_len, json_t **root, unsigned char **img, size_t *len,
                     char *err, size_t errlen);

#endif
