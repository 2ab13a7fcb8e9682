/*
 * test_ocr.c - the built-in `ocr` handler, called in-process (init, process,
 * fini) on images rendered by tests/text_image.c: accuracy, the four image
 * formats, bad bodies, the Open Inference Protocol v2 JSON form, init errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "tests/cunit_util.h"
#include "tests/text_image.h"
#include "ringmaster_handler.h"

extern const struct rm_handler rm_handler_ocr;

#define RESP_CAP (1u << 20) /* the pool default max_response_size, 1 MiB */

/* Ordinary English sentences, each rendered as its own image and all of them
 * together as one paragraph image. Printable ASCII only (the built-in font). */
static const char *const corpus[] = {
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore every summer.",
    "A journey of a thousand miles begins with a single step.",
    "Please remember to water the plants on Tuesday morning.",
    "The library closes early on public holidays and weekends.",
    "Our train was delayed by twenty minutes because of snow.",
    "He bought bread, cheese and apples at the village market.",
    "The children played football in the park after school.",
    "Every good story needs a beginning, a middle and an end.",
    "The old clock in the hall stopped at exactly midnight.",
    "We watched the sun set slowly behind the distant hills.",
    "Fresh coffee and warm toast make a pleasant breakfast.",
    "The museum opened a new exhibition about ancient ships.",
    "Heavy rain is expected across the north later tonight.",
    "My grandmother keeps her letters in a wooden box.",
    "The committee will meet again next Thursday at noon.",
    "Birds were singing loudly in the garden this morning.",
    "Turn left at the bridge and follow the river path.",
    "The teacher asked the class to read the first chapter.",
    "A small boat drifted quietly across the calm lake.",
    "They painted the kitchen walls a soft shade of yellow.",
    "The doctor said I should rest and drink more water.",
    "Thank you for your letter, which arrived yesterday.",
    "The price of tickets will rise in the spring.",
};
#define NCORPUS (sizeof corpus / sizeof corpus[0])

/* --------------------------------------------------------------- helpers */

static void *g_state; /* one engine for the whole run, as in a worker */

static void *ocr_state(void)
{
    if (!g_state) {
        struct rm_handler_config cfg = { .pool = "ocr" };
        char err[512] = "";
        int r = rm_handler_ocr.init(&g_state, &cfg, err, sizeof err);
        if (r != 0) {
            fprintf(stderr, "ocr init failed: %s\n", err);
            g_state = NULL;
        }
    }
    return g_state;
}

struct call {
    int ret;
    int status;
    char content_type[RM_CONTENT_TYPE_MAX];
    json_t *json; /* the parsed body, or NULL */
    char *body;   /* NUL-terminated copy */
    size_t len;
};

static struct call run(const void *body, size_t len, const char *ctype, size_t cap)
{
    struct call c = { 0 };
    void *st = ocr_state();
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    char *buf = malloc(cap ? cap : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    struct rm_request req = {
        .body = body, .body_len = len, .content_type = ctype ? ctype : "",
        .attempt = 1, .deadline_ns = 0, .pool = "ocr",
    };
    struct rm_response resp = {
        .status = 200, .content_type = "application/octet-stream",
        .body = buf, .body_cap = cap, .body_len = 0,
    };
    c.ret = rm_handler_ocr.process(st, &req, &resp);
    c.status = resp.status;
    memcpy(c.content_type, resp.content_type, sizeof c.content_type);
    CU_ASSERT(resp.body_len <= cap);
    c.len = resp.body_len;
    c.body = malloc(c.len + 1);
    memcpy(c.body, buf, c.len);
    c.body[c.len] = '\0';
    free(buf);
    c.json = json_loadb(c.body, c.len, 0, NULL);
    return c;
}

static void call_free(struct call *c)
{
    json_decref(c->json);
    free(c->body);
}

/* Render lines and encode them in format; returns a malloc'ed buffer. */
static l_uint8 *make_image(const char *const *lines, size_t n, int format, size_t *size)
{
    char err[256];
    PIX *pix = rm_text_image_render(lines, n, RM_TEXT_IMAGE_FONT_SIZE,
                                    RM_TEXT_IMAGE_SCALE, err, sizeof err);
    if (!pix)
        fprintf(stderr, "render: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pix);
    l_uint8 *data = NULL;
    int r = rm_text_image_encode(pix, format, &data, size);
    pixDestroy(&pix);
    CU_ASSERT_EQUAL_FATAL(r, 0);
    return data;
}

static const char *json_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Check an error answer: status and a message containing `needle`. */
static void expect_error(const struct call *c, int status, const char *needle)
{
    CU_ASSERT_EQUAL(c->ret, 0);
    CU_ASSERT_EQUAL(c->status, status);
    CU_ASSERT_STRING_EQUAL(c->content_type, "application/json");
    const char *msg = c->json ? json_str(c->json, "error") : NULL;
    CU_ASSERT_PTR_NOT_NULL(msg);
    if (msg && !strstr(msg, needle)) {
        fprintf(stderr, "\n  error \"%s\" lacks \"%s\"\n", msg, needle);
        CU_FAIL("error message does not give the reason");
    }
}

/* Split on whitespace into at most max words (pointers into buf). */
static size_t split_words(char *buf, char **words, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok(buf, " \t\r\n"); tok && n < max; tok = strtok(NULL, " \t\r\n"))
        words[n++] = tok;
    return n;
}

/* Words of ref that OCR got right: ref length minus the word-level edit
 * distance (substitutions, insertions, deletions), floored at 0. */
static size_t words_correct(const char *ref, const char *hyp, size_t *nref)
{
    char rb[4096], hb[4096];
    char *rw[512], *hw[512];
    snprintf(rb, sizeof rb, "%s", ref);
    snprintf(hb, sizeof hb, "%s", hyp);
    size_t n = split_words(rb, rw, 512), m = split_words(hb, hw, 512);
    static size_t d[513][513];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t sub = d[i - 1][j - 1] + (strcmp(rw[i - 1], hw[j - 1]) != 0);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    *nref = n;
    return d[n][m] >= n ? 0 : n - d[n][m];
}

/* Base64 of p by libsodium, in one of its variants (default: standard, padded). */
static char *base64_v(const unsigned char *p, size_t n, int variant)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, variant);
    char *out = malloc(cap);
    sodium_bin2base64(out, cap, p, n, variant);
    return out;
}

static char *base64(const unsigned char *p, size_t n)
{
    return base64_v(p, n, sodium_base64_VARIANT_ORIGINAL);
}

static char *v2_request(const char *b64, const char *id)
{
    json_t *root = json_pack("{s:[{s:s, s:s, s:[i], s:[s]}]}", "inputs",
                             "name", "image", "datatype", "BYTES", "shape", 1,
                             "data", b64);
    if (id)
        json_object_set_new(root, "id", json_string(id));
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ------------------------------------------------------------------ tests */

static void test_ocr_reads_generated_lines_with_95pct_word_accuracy(void)
{
    size_t total = 0, correct = 0;
    double line_ms = 0, para_ms = 0;
    /* Each line alone (the crop case), then all lines as one paragraph. */
    for (size_t i = 0; i <= NCORPUS; i++) {
        int para = i == NCORPUS;
        size_t size;
        l_uint8 *png = para ? make_image(corpus, NCORPUS, IFF_PNG, &size)
                            : make_image(&corpus[i], 1, IFF_PNG, &size);
        struct call c = run(png, size, "image/png", RESP_CAP);
        free(png);
        CU_ASSERT_EQUAL(c.ret, 0);
        CU_ASSERT_EQUAL(c.status, 200);
        const char *text = c.json ? json_str(c.json, "text") : NULL;
        CU_ASSERT_PTR_NOT_NULL(text);
        if (text) {
            char ref[4096] = "";
            if (para)
                for (size_t k = 0; k < NCORPUS; k++) {
                    strcat(ref, corpus[k]);
                    strcat(ref, "\n");
                }
            else
                snprintf(ref, sizeof ref, "%s", corpus[i]);
            size_t nref;
            size_t ok = words_correct(ref, text, &nref);
            total += nref;
            correct += ok;
            if (ok != nref)
                printf("\n    %s: %zu/%zu words: \"%s\"",
                       para ? "paragraph" : corpus[i], ok, nref, text);
            double ms = json_number_value(json_object_get(c.json, "ms"));
            if (para)
                para_ms = ms;
            else
                line_ms += ms;
        }
        call_free(&c);
    }
    double acc = total ? 100.0 * (double)correct / (double)total : 0;
    printf("\n    word accuracy %.2f%% (%zu/%zu words, %zu lines + 1 paragraph); "
           "OCR %.1f ms per line, %.1f ms for the paragraph\n   ",
           acc, correct, total, NCORPUS, line_ms / NCORPUS, para_ms);
    CU_ASSERT(total >= 200);
    CU_ASSERT(acc >= 95.0);
}

static void test_ocr_accepts_png_jpeg_tiff_pnm(void)
{
    static const char *const line[] = { "Seven formats walked into a bar." };
    static const struct { int fmt; const char *ctype; } f[] = {
        { IFF_PNG, "image/png" }, { IFF_JFIF_JPEG, "image/jpeg" },
        { IFF_TIFF, "image/tiff" }, { IFF_PNM, "image/x-portable-anymap" },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        size_t size;
        l_uint8 *img = make_image(line, 1, f[i].fmt, &size);
        struct call c = run(img, size, f[i].ctype, RESP_CAP);
        free(img);
        CU_ASSERT_EQUAL(c.ret, 0);
        CU_ASSERT_EQUAL(c.status, 200);
        CU_ASSERT_STRING_EQUAL(c.content_type, "application/json");
        CU_ASSERT_PTR_NOT_NULL_FATAL(c.json);
        const char *text = json_str(c.json, "text");
        if (!text || strcmp(text, line[0]) != 0)
            fprintf(stderr, "\n  %s: read \"%s\"\n", f[i].ctype, text ? text : "(none)");
        CU_ASSERT(text && strcmp(text, line[0]) == 0);
        CU_ASSERT_STRING_EQUAL(json_str(c.json, "language"), "eng");
        json_t *conf = json_object_get(c.json, "confidence");
        CU_ASSERT(json_is_number(conf));
        CU_ASSERT(json_number_value(conf) >= 50 && json_number_value(conf) <= 100);
        CU_ASSERT(json_is_number(json_object_get(c.json, "ms")));
        call_free(&c);
    }
}

static void test_ocr_empty_body_is_400(void)
{
    struct call c = run("", 0, "image/png", RESP_CAP);
    expect_error(&c, 400, "empty body");
    call_free(&c);
    c = run(NULL, 0, "", RESP_CAP);
    expect_error(&c, 400, "empty body");
    call_free(&c);
    c = run("", 0, "application/json", RESP_CAP);
    expect_error(&c, 400, "empty body");
    call_free(&c);
}

static void test_ocr_garbage_body_is_400(void)
{
    static const char garbage[] = "this is certainly not an image, just some words";
    struct call c = run(garbage, sizeof garbage - 1, "image/png", RESP_CAP);
    expect_error(&c, 400, "not a PNG, JPEG, TIFF or PNM image");
    call_free(&c);

    /* Shorter than any magic number: must not be read past its end. */
    c = run("\x89P", 2, "", RESP_CAP);
    expect_error(&c, 400, "not a PNG, JPEG, TIFF or PNM image");
    call_free(&c);

    /* A format leptonica knows but we do not take is named. */
    static const char gif[] = "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00";
    c = run(gif, sizeof gif - 1, "image/gif", RESP_CAP);
    expect_error(&c, 400, "GIF images are not supported");
    call_free(&c);

    /* Random bytes after a valid JPEG magic number. */
    unsigned char junk[4096];
    srand(7);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)rand();
    junk[0] = 0xff; junk[1] = 0xd8; junk[2] = 0xff; junk[3] = 0xe0;
    c = run(junk, sizeof junk, "image/jpeg", RESP_CAP);
    expect_error(&c, 400, "corrupt JPEG");
    call_free(&c);
}

static void test_ocr_truncated_png_is_400(void)
{
    static const char *const line[] = { "This image will be cut short." };
    size_t size;
    l_uint8 *png = make_image(line, 1, IFF_PNG, &size);
    /* Cut in the pixel data, in the header chunk, and just after the magic. */
    size_t cuts[] = { size / 2, 30, 8 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        struct call c = run(png, cuts[i], "image/png", RESP_CAP);
        expect_error(&c, 400, "truncated or corrupt PNG image");
        call_free(&c);
    }
    free(png);
}

static void test_ocr_v2_json_round_trip(void)
{
    static const char *const line[] = { "Inference over the open protocol." };
    size_t size;
    l_uint8 *png = make_image(line, 1, IFF_PNG, &size);
    char *b64 = base64(png, size);
    free(png);
    char *req = v2_request(b64, "req-42");
    free(b64);

    /* Once with the Content-Type, once sniffed from the leading '{'. */
    for (int sniff = 0; sniff < 2; sniff++) {
        struct call c = run(req, strlen(req),
                            sniff ? "" : "application/json; charset=utf-8", RESP_CAP);
        CU_ASSERT_EQUAL(c.ret, 0);
        CU_ASSERT_EQUAL(c.status, 200);
        CU_ASSERT_STRING_EQUAL(c.content_type, "application/json");
        CU_ASSERT_PTR_NOT_NULL_FATAL(c.json);
        CU_ASSERT_STRING_EQUAL(json_str(c.json, "model_name"), "ocr");
        CU_ASSERT_STRING_EQUAL(json_str(c.json, "id"), "req-42");
        json_t *outs = json_object_get(c.json, "outputs");
        CU_ASSERT_EQUAL_FATAL(json_array_size(outs), 2);
        json_t *o0 = json_array_get(outs, 0), *o1 = json_array_get(outs, 1);
        CU_ASSERT_STRING_EQUAL(json_str(o0, "name"), "text");
        CU_ASSERT_STRING_EQUAL(json_str(o0, "datatype"), "BYTES");
        CU_ASSERT_EQUAL(json_integer_value(json_array_get(json_object_get(o0, "shape"), 0)), 1);
        json_t *t = json_array_get(json_object_get(o0, "data"), 0);
        CU_ASSERT(json_is_string(t) && strcmp(json_string_value(t), line[0]) == 0);
        if (json_is_string(t) && strcmp(json_string_value(t), line[0]) != 0)
            fprintf(stderr, "\n  v2 read \"%s\"\n", json_string_value(t));
        CU_ASSERT_STRING_EQUAL(json_str(o1, "name"), "confidence");
        CU_ASSERT_STRING_EQUAL(json_str(o1, "datatype"), "FP32");
        json_t *conf = json_array_get(json_object_get(o1, "data"), 0);
        CU_ASSERT(json_is_number(conf) && json_number_value(conf) >= 50 &&
                  json_number_value(conf) <= 100);
        call_free(&c);
    }
    free(req);

    /* Without an id, none is echoed. */
    png = make_image(line, 1, IFF_PNG, &size);
    b64 = base64(png, size);
    free(png);
    req = v2_request(b64, NULL);
    free(b64);
    struct call c = run(req, strlen(req), "application/json", RESP_CAP);
    CU_ASSERT_EQUAL(c.status, 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.json);
    CU_ASSERT_PTR_NULL(json_object_get(c.json, "id"));
    call_free(&c);
    free(req);
}

static void test_ocr_v2_bad_base64_is_400(void)
{
    static const struct { const char *b64, *why; } bad[] = {
        { "iVBORw0KGgo*AAAA", "bad base64: character '*' at offset 11" },
        { "iVBORw0KGgoAA", "bad base64: truncated" },                /* 13 characters */
        { "iVBO=Rw0", "bad base64: stray '=' at offset 4" },
        { "iVBORw0KGgo==", "bad base64: stray '=' at offset 12" },   /* one '=' too many */
        { "AB==", "bad base64: truncated or wrong '=' padding" },   /* leftover bits not zero */
        { "iVBO\x01Rw0", "bad base64: byte 0x01 at offset 4" },
        { "iVBO+Rw-", "bad base64: character '+' at offset 4" },    /* two alphabets */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *req = v2_request(bad[i].b64, "x");
        struct call c = run(req, strlen(req), "application/json", RESP_CAP);
        expect_error(&c, 400, bad[i].why);
        call_free(&c);
        free(req);
    }
    /* Valid base64 of something that is not an image. */
    char *req = v2_request("aGVsbG8gd29ybGQ=", NULL);
    struct call c = run(req, strlen(req), "application/json", RESP_CAP);
    expect_error(&c, 400, "not a PNG, JPEG, TIFF or PNM image");
    call_free(&c);
    free(req);
}

/* Standard or URL-safe alphabet, '=' padding or none, MIME line breaks:
 * the same image, the same text. */
static void test_ocr_v2_base64_forms_accepted(void)
{
    static const char *const line[] = { "Every form of base64." };
    size_t size;
    l_uint8 *png = make_image(line, 1, IFF_PNG, &size);
    static const int variants[] = { sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                    sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING };
    for (size_t v = 0; v <= sizeof variants / sizeof variants[0]; v++) {
        char *b64 = base64_v(png, size, variants[v % 4]);
        if (v == 4) { /* the first form again, broken into 76-character lines */
            size_t n = strlen(b64);
            char *lines = malloc(n + n / 76 * 2 + 1), *o = lines;
            for (size_t i = 0; i < n; i++) {
                if (i && i % 76 == 0)
                    *o++ = '\r', *o++ = '\n';
                *o++ = b64[i];
            }
            *o = '\0';
            free(b64);
            b64 = lines;
        }
        char *req = v2_request(b64, NULL);
        free(b64);
        struct call c = run(req, strlen(req), "application/json", RESP_CAP);
        CU_ASSERT_EQUAL(c.status, 200);
        json_t *t = c.json ? json_array_get(json_object_get(json_array_get(json_object_get(c.json, "outputs"), 0),
                                                            "data"), 0) : NULL;
        CU_ASSERT(json_is_string(t) && strcmp(json_string_value(t), line[0]) == 0);
        if (c.status != 200 || !json_is_string(t) || strcmp(json_string_value(t), line[0]) != 0)
            fprintf(stderr, "\n  form %zu: status %d, %s\n", v, c.status, c.body ? c.body : "?");
        call_free(&c);
        free(req);
    }
    free(png);
}

static void test_ocr_v2_malformed_json_is_400(void)
{
    static const struct { const char *body, *why; } cases[] = {
        { "{\"inputs\": [", "malformed JSON" },
        { "{}", "missing \"inputs\"" },
        { "{\"inputs\": []}", "missing \"inputs\"" },
        { "{\"inputs\": [{\"name\":\"a\"},{\"name\":\"b\"}]}", "no input named \"image\"" },
        { "{\"inputs\": [{\"name\":\"image\",\"datatype\":\"FP32\",\"data\":[\"AA==\"]}]}",
          "datatype" },
        { "{\"inputs\": [{\"name\":\"image\",\"data\":[1]}]}", "needs \"data\"" },
        { "{\"inputs\": [{\"name\":\"image\",\"data\":[\"AA==\",\"AA==\"]}]}", "exactly one image" },
        { "{\"inputs\": [{\"name\":\"image\",\"data\":[\"\"]}]}", "empty body" },
        { "{\"id\": 5, \"inputs\": [{\"name\":\"image\",\"data\":[\"AA==\"]}]}", "\"id\"" },
        { "[1, 2]", "JSON object" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct call c = run(cases[i].body, strlen(cases[i].body), "application/json", RESP_CAP);
        expect_error(&c, 400, cases[i].why);
        call_free(&c);
    }
}

static void test_ocr_result_larger_than_response_cap_is_handler_error(void)
{
    /* About 200 bytes of answer. */
    size_t size;
    l_uint8 *png = make_image(corpus, 3, IFF_PNG, &size);
    /* Room for the error message, not for the result. */
    struct call c = run(png, size, "image/png", 120);
    CU_ASSERT(c.ret < 0);
    const char *msg = c.json ? json_str(c.json, "error") : NULL;
    if (!msg || !strstr(msg, "max_response_size"))
        fprintf(stderr, "\n  answer: \"%s\"\n", c.body);
    CU_ASSERT(msg && strstr(msg, "max_response_size"));
    call_free(&c);
    /* Not even room for the message: still an error, with an empty body. */
    c = run(png, size, "image/png", 10);
    CU_ASSERT(c.ret < 0);
    CU_ASSERT_EQUAL(c.len, 0);
    call_free(&c);
    free(png);
}

static void test_ocr_bad_language_init_fails(void)
{
    struct rm_handler_kv kv[] = { { "language", "xx_nonexistent" } };
    struct rm_handler_config cfg = { .pool = "ocr", .kv = kv, .nkv = 1 };
    void *st = NULL;
    char err[512] = "";
    CU_ASSERT_EQUAL(rm_handler_ocr.init(&st, &cfg, err, sizeof err), RM_INIT_FAILED);
    CU_ASSERT(strstr(err, "xx_nonexistent") != NULL);
    CU_ASSERT_PTR_NULL(st);

    /* A bad psm is refused too, before loading anything. */
    struct rm_handler_kv kv2[] = { { "psm", "sideways" } };
    struct rm_handler_config cfg2 = { .pool = "ocr", .kv = kv2, .nkv = 1 };
    err[0] = '\0';
    CU_ASSERT_EQUAL(rm_handler_ocr.init(&st, &cfg2, err, sizeof err), RM_INIT_FAILED);
    CU_ASSERT(strstr(err, "psm") != NULL);
}

static const rm_test tests[] = {
    RM_TEST(test_ocr_reads_generated_lines_with_95pct_word_accuracy),
    RM_TEST(test_ocr_accepts_png_jpeg_tiff_pnm),
    RM_TEST(test_ocr_empty_body_is_400),
    RM_TEST(test_ocr_garbage_body_is_400),
    RM_TEST(test_ocr_truncated_png_is_400),
    RM_TEST(test_ocr_v2_json_round_trip),
    RM_TEST(test_ocr_v2_bad_base64_is_400),
    RM_TEST(test_ocr_v2_base64_forms_accepted),
    RM_TEST(test_ocr_v2_malformed_json_is_400),
    RM_TEST(test_ocr_result_larger_than_response_cap_is_handler_error),
    RM_TEST(test_ocr_bad_language_init_fails),
    { 0 },
};

int main(void)
{
    /* As the worker does. libgomp reads this only at program start, so here
     * it is documentation: the handler's init() limits OpenMP itself. */
    setenv("OMP_THREAD_LIMIT", "1", 1);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int r = rm_run_suite("ocr", tests);
    if (g_state)
        rm_handler_ocr.fini(g_state);
    printf("test_ocr: %.1f s in all\n", ms_since(&t0) / 1e3);
    return r;
}
