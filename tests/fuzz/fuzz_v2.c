/* fuzz_v2.c - libFuzzer: decoding an Open Inference Protocol v2 request
 * (JSON, then base64) as the ocr built-in does (rm_ocr_v2_decode), on any
 * bytes: it answers 0 with an image, or 400/500 with a reason; never a
 * crash, a leak or a read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/handlers/ocr_v2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *root;
    unsigned char *img;
    size_t len;
    char err[512];
    int r = rm_ocr_v2_decode(data, size, &root, &img, &len, err, sizeof err);
    if (r == 0) {
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < len; i++)
            sink ^= img[i];
        (void)sink;
        free(img);
        json_decref(root);
    } else if (r != 400 && r != 500) {
        abort();
    } else if (!err[0]) {
        abort(); /* an error always says why */
    }
    return 0;
}
