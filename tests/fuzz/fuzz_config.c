/* fuzz_config.c - libFuzzer: the INI parser and validation (core/config.c)
 * on any bytes. A crash, a hang or a sanitizer report is a finding; an
 * error message must always name the file ("fuzz.ini:..."). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

static struct rm_config cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char err[2048];
    err[0] = '\0';
    if (rm_config_load_string(&cfg, "fuzz.ini", text, err, sizeof err) < 0) {
        if (strncmp(err, "fuzz.ini", 8) != 0)
            abort(); /* every error names the file */
    } else {
        /* a valid file: its handler keys check cannot crash either */
        static const char *const keys[] = {"language", "*", NULL};
        for (size_t i = 0; i < cfg.npools; i++)
            rm_config_check_handler_keys(&cfg, i, "fuzz", keys, err, sizeof err);
    }
    free(text);
    return 0;
}
