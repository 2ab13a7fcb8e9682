/*
 * ocr.c - the built-in `ocr` handler: Tesseract's LSTM engine through its C
 * API, images decoded by leptonica, answers built with jansson.
 *
 * Pool keys (see docs/contract.md; any key ringmaster does not know comes
 * here):
 *   language = eng          Tesseract language(s), e.g. "eng" or "eng+deu";
 *                           needs tesseract-ocr-<lang> (the .traineddata).
 *   tessdata = DIR          directory holding the .traineddata files
 *                           (default: the package's, or $TESSDATA_PREFIX).
 *   psm = single_block      page segmentation mode: a number 1..13 as in
 *                           `tesseract --help-psm`, or a name: auto,
 *                           single_column, single_block, single_line,
 *                           single_word, sparse_text, raw_line, ... (below).
 *   max_image_pixels = 36000000
 *                           larger decoded images are refused with 400, so a
 *                           small compressed body cannot make a worker
 *                           allocate gigabytes (a "decompression bomb").
 *
 * Why psm defaults to single_block (6) and not auto (3): this handler is
 * mostly fed crops - one line, or a paragraph - not scanned pages. PSM_AUTO
 * runs page layout analysis first, which throws away a short crop as noise:
 * on one-word images ("Hi", "I") it returns no text at all, where
 * single_block reads them. single_block treats the whole image as one uniform
 * block of text, so it reads a single line and a paragraph alike; on the
 * tests/test_ocr corpus (24 lines, then the 24 as one paragraph) both modes
 * read 100% of the words and single_block is ~15% faster. single_line (7)
 * garbles paragraphs. Pages with columns or scattered text want psm = auto
 * (or sparse_text): single_block would read across the columns.
 *
 * Requests (POST /v2/models/{pool}/infer):
 *   - a raw image body: PNG, JPEG, TIFF (first page) or PNM. Answer 200
 *     application/json {"text":..., "confidence":0-100, "language":..., "ms":...}
 *   - Open Inference Protocol v2 JSON (Content-Type application/json, or a body
 *     starting with '{'):
 *       {"id":"...", "inputs":[{"name":"image","datatype":"BYTES","shape":[1],
 *                               "data":["<base64 of the image>"]}]}
 *     answered in the v2 response shape with outputs "text" (BYTES) and
 *     "confidence" (FP32).
 *   Bad input is 400 {"error":"..."}; a result larger than max_response_size
 *   and engine failures are handler errors (HTTP 500).
 *
 * Threads: Tesseract's LSTM uses OpenMP, and on a small machine OpenMP's
 * default thread teams make one line 4-5x slower (the prefork workers already
 * use every core; extra threads only spin and contend). OMP_THREAD_LIMIT=1 is
 * the documented cure, but libgomp reads it in its constructor, at program
 * start: a setenv() in init() is too late when libtesseract (and so libgomp)
 * is linked into the worker binary. init() therefore also sets OpenMP's
 * max-active-levels to 0, which makes every parallel region run on the
 * calling thread; it finds libgomp already loaded with dlopen(RTLD_NOLOAD) so
 * the build needs no -fopenmp and a Tesseract built without OpenMP is fine.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NOLOAD */
#endif
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <leptonica/allheaders.h>
/* base64 only: libsodium's codecs keep no state and need no sodium_init() */
#include <sodium.h>
#include <tesseract/capi.h>

#include "ringmaster_handler.h"
#include "worker/handlers/ocr_v2.h"

#define OCR_DEFAULT_LANGUAGE "eng"
#define OCR_DEFAULT_PSM PSM_SINGLE_BLOCK
#define OCR_DEFAULT_MAX_PIXELS 36000000L /* 600 ppi US letter, ~A4 */
/* Tesseract keeps coordinates in 16-bit integers (TBOX). */
#define OCR_MAX_SIDE 32767
/* Answer 504 ourselves this long before the request deadline, so the worker
 * is not killed under a request that was going to time out anyway. */
#define OCR_DEADLINE_MARGIN_MS 20

struct ocr_state {
    TessBaseAPI *api;
    ETEXT_DESC *monitor;
    char language[64];
    char pool[128];
    long max_pixels;
    int devnull; /* for quiet_stderr(), or -1 */
};

/* -------------------------------------------------------------- helpers */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Serialize root into resp. Returns 0, or the size it needed (> 0) when it
 * does not fit, or -1 when jansson failed. Never leaves a partial body. */
static long dump_json(json_t *root, int status, struct rm_response *resp)
{
    /* 10 significant digits: 141.3 stays "141.3", not 141.30000000000001. */
    size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(10);
    size_t need = json_dumpb(root, NULL, 0, flags);
    if (need == 0)
        return -1;
    if (need > resp->body_cap) {
        resp->body_len = 0;
        return (long)need;
    }
    json_dumpb(root, resp->body, resp->body_cap, flags);
    resp->body_len = need;
    resp->status = status;
    strcpy(resp->content_type, "application/json");
    return 0;
}

/* {"error": message}. Jansson does the escaping, so the message may quote
 * client input. Returns 0: the error answer is the result (when even the
 * message does not fit max_response_size, the body stays empty). */
static int set_error(struct rm_response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_error(struct rm_response *resp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *root = json_object();
    /* json_string() refuses invalid UTF-8, and a message quoting client
     * bytes (jansson's own parse errors do) may be: fall back to ASCII. */
    json_t *s = json_string(msg);
    if (!s) {
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        s = json_string(msg);
    }
    json_object_set_new(root, "error", s);
    long r = dump_json(root, status, resp);
    json_decref(root);
    if (r != 0) {
        resp->status = status;
        resp->body_len = 0;
    }
    return 0;
}

/* A handler error (HTTP 500) with a JSON message when it fits. */
static int fail(struct rm_response *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct rm_response *resp, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    set_error(resp, 500, "%s", msg);
    return -1;
}

static const char *format_name(int fmt)
{
    switch (fmt) {
    case IFF_BMP: return "BMP";
    case IFF_JFIF_JPEG: return "JPEG";
    case IFF_PNG: return "PNG";
    case IFF_PNM: return "PNM";
    case IFF_PS: return "PostScript";
    case IFF_GIF: return "GIF";
    case IFF_JP2: return "JPEG 2000";
    case IFF_WEBP: return "WebP";
    case IFF_LPDF: return "PDF";
    case IFF_SPIX: return "leptonica SPIX";
    default:
        return L_FORMAT_IS_TIFF(fmt) ? "TIFF" : "unknown";
    }
}

/* Is the Content-Type application/json (any case, parameters allowed)? */
static int is_json_type(const char *ct)
{
    static const char json[] = "application/json";
    if (!ct)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, json, sizeof json - 1) != 0)
        return 0;
    char c = ct[sizeof json - 1];
    return c == '\0' || c == ';' || c == ' ' || c == '\t';
}

static int starts_with_brace(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i < n && p[i] == '{';
}

/*
 * Base64 (RFC 4648) by libsodium: the standard alphabet or, when the text
 * uses '-' or '_', the URL-safe one; '=' padding optional (when present it
 * must be right); whitespace (MIME line breaks) ignored; leftover bits must
 * be zero. Anything else is an error naming the offending position. out
 * must hold 3 * (n / 4) + 3 bytes. Returns the decoded length, or -1 with
 * a message in err.
 */
static long base64_decode(const char *in, size_t n, unsigned char *out,
                          char *err, size_t errlen)
{
    bool url = memchr(in, '-', n) || memchr(in, '_', n);
    size_t e = n;
    while (e && (in[e - 1] == ' ' || in[e - 1] == '\t' || in[e - 1] == '\r' || in[e - 1] == '\n'))
        e--;
    bool padded = e && in[e - 1] == '=';
    int variant = url ? (padded ? sodium_base64_VARIANT_URLSAFE : sodium_base64_VARIANT_URLSAFE_NO_PADDING)
                      : (padded ? sodium_base64_VARIANT_ORIGINAL : sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    size_t len = 0;
    const char *stop = NULL;
    int rc = sodium_base642bin(out, n / 4 * 3 + 3, in, n, " \t\r\n", &len, &stop, variant);
    if (rc == 0 && stop == in + n)
        return (long)len;
    size_t at = stop ? (size_t)(stop - in) : 0;
    unsigned char c = at < n ? (unsigned char)in[at] : 0;
    if (rc == 0 && c != '=' && c >= 0x20 && c < 0x7f)
        snprintf(err, errlen, "bad base64: character '%c' at offset %zu", c, at);
    else if (rc == 0 && c != '=')
        snprintf(err, errlen, "bad base64: byte 0x%02x at offset %zu", c, at);
    else if (rc == 0)
        snprintf(err, errlen, "bad base64: stray '=' at offset %zu", at);
    else
        snprintf(err, errlen, "bad base64: truncated or wrong '=' padding (the length is not a whole number of bytes)");
    return -1;
}

/*
 * libpng, libjpeg and libtiff print their own complaints about a bad image
 * ("libpng error: ...", "Premature end of JPEG file") straight to stderr,
 * whatever leptonica's message severity. A bad client image is answered with
 * 400 and is no news for the log, and a client must not be able to flood the
 * log, so stderr points to /dev/null while a client image is decoded. The
 * worker is single-threaded: nothing else writes meanwhile.
 */
static int quiet_stderr(int devnull)
{
    if (devnull < 0)
        return -1;
    fflush(stderr);
    int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    if (saved >= 0 && dup2(devnull, STDERR_FILENO) < 0) {
        close(saved);
        return -1;
    }
    return saved;
}

static void restore_stderr(int saved)
{
    if (saved < 0)
        return;
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
}

/* ----------------------------------------------------------------- OCR */

struct ocr_result {
    char *text;       /* TessDeleteText() it */
    int confidence;   /* 0..100 */
    double ms;
};

static int ocr_pix(struct ocr_state *st, PIX *pix, const char *fname, uint64_t deadline_ns,
                   struct ocr_result *res, char *err, size_t errlen);

/*
 * Decode one image and recognize it. Returns 0 with *res filled, or an HTTP
 * status (400, 500, 504) with a message in err.
 */
static int ocr_image(struct ocr_state *st, const unsigned char *data,
                     size_t len, uint64_t deadline_ns, struct ocr_result *res,
                     char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (len == 0) {
        snprintf(err, errlen, "empty body: send a PNG, JPEG, TIFF or PNM image");
        return 400;
    }

    /* findFileFormatBuffer() reads the first 12 bytes whatever the length:
     * let it read a zero-padded copy, never past a short body. */
    unsigned char head[16] = {0};
    memcpy(head, data, len < sizeof head ? len : sizeof head);
    l_int32 fmt = IFF_UNKNOWN;
    if (findFileFormatBuffer(head, &fmt) != 0)
        fmt = IFF_UNKNOWN;
    if (fmt != IFF_PNG && fmt != IFF_JFIF_JPEG && fmt != IFF_PNM &&
        !L_FORMAT_IS_TIFF(fmt)) {
        if (fmt == IFF_UNKNOWN)
            snprintf(err, errlen, "not a PNG, JPEG, TIFF or PNM image");
        else
            snprintf(err, errlen, "%s images are not supported: send PNG, JPEG, TIFF or PNM",
                     format_name(fmt));
        return 400;
    }
    const char *fname = format_name(fmt);

    /* Dimensions first, from the header only, to refuse a huge image before
     * decoding allocates it. */
    l_int32 hfmt, w = 0, h = 0, bps, spp, iscmap;
    int saved = quiet_stderr(st->devnull);
    l_ok hr = pixReadHeaderMem(data, len, &hfmt, &w, &h, &bps, &spp, &iscmap);
    restore_stderr(saved);
    if (hr != 0 || w <= 0 || h <= 0) {
        snprintf(err, errlen, "truncated or corrupt %s image (unreadable header)", fname);
        return 400;
    }
    if (w > OCR_MAX_SIDE || h > OCR_MAX_SIDE || (double)w * h > (double)st->max_pixels) {
        snprintf(err, errlen,
                 "image of %dx%d pixels is too large (limits: %d per side, %ld in all)",
                 w, h, OCR_MAX_SIDE, st->max_pixels);
        return 400;
    }

    saved = quiet_stderr(st->devnull);
    PIX *pix = pixReadMem(data, len);
    restore_stderr(saved);
    if (!pix) {
        snprintf(err, errlen, "truncated or corrupt %s image", fname);
        return 400;
    }
    return ocr_pix(st, pix, fname, deadline_ns, res, err, errlen);
}

/*
 * Recognize a decoded image (taken: destroyed here). Returns 0 with *res
 * filled, or an HTTP status (500, 504) with a message in err. deadline_ns 0:
 * none.
 */
static int ocr_pix(struct ocr_state *st, PIX *pix, const char *fname, uint64_t deadline_ns,
                   struct ocr_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    /* Text drawn on a transparent background is often black-on-"black" in
     * the RGB channels: put it on white first. */
    if (pixGetSpp(pix) == 4) {
        PIX *flat = pixAlphaBlendUniform(pix, 0xffffff00);
        pixDestroy(&pix);
        if (!flat) {
            snprintf(err, errlen, "cannot flatten the %s image's alpha channel", fname);
            return 500;
        }
        pix = flat;
    }

    double t0 = now_ms();
    TessBaseAPISetImage2(st->api, pix);
    /* Without a credible resolution in the file Tesseract assumes 70 ppi and
     * scales its noise thresholds for that; 300 is what screenshots and scans
     * of text are closest to. */
    l_int32 xres = pixGetXRes(pix);
    pixDestroy(&pix); /* Tesseract took its own copy */
    if (xres < 70 || xres > 2400)
        TessBaseAPISetSourceResolution(st->api, 300);

    int deadline_ms = 0;
    if (deadline_ns) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        int64_t left = deadline_ns > now ? (int64_t)((deadline_ns - now) / 1000000u) : 0;
        left -= OCR_DEADLINE_MARGIN_MS;
        if (left <= 0) {
            TessBaseAPIClear(st->api);
            snprintf(err, errlen, "request deadline passed before OCR could start");
            return 504;
        }
        deadline_ms = left > 0x7fffffff ? 0x7fffffff : (int)left;
    }
    /* The monitor is reused: reset its deadline every time (0 = none is not
     * a value it knows, so use "effectively never"). */
    TessMonitorSetDeadlineMSecs(st->monitor, deadline_ms ? deadline_ms : 0x7fffffff);

    int rc = TessBaseAPIRecognize(st->api, st->monitor);
    if (rc != 0) {
        TessBaseAPIClear(st->api);
        if (deadline_ms && now_ms() - t0 >= deadline_ms) {
            snprintf(err, errlen, "OCR did not finish before the request deadline");
            return 504;
        }
        snprintf(err, errlen, "Tesseract could not recognize the image");
        return 500;
    }
    char *text = TessBaseAPIGetUTF8Text(st->api);
    int conf = TessBaseAPIMeanTextConf(st->api);
    /* Drop the page results now (the model stays loaded): the next request
     * starts from a clean state and memory does not grow with page size. */
    TessBaseAPIClear(st->api);
    res->ms = now_ms() - t0;
    if (!text) {
        snprintf(err, errlen, "Tesseract returned no text");
        return 500;
    }
    /* Tesseract ends every line with '\n' and paragraphs with a blank line;
     * keep the inner line breaks, drop the trailing ones. */
    size_t tl = strlen(text);
    while (tl > 0 && isspace((unsigned char)text[tl - 1]))
        text[--tl] = '\0';
    res->text = text;
    res->confidence = conf < 0 ? 0 : conf > 100 ? 100 : conf;
    return 0;
}

/* Put an OCR result answer into resp: 0, or -1 (500) when it does not fit. */
static int answer(json_t *root, struct rm_response *resp)
{
    long r = dump_json(root, 200, resp);
    json_decref(root);
    if (r > 0)
        return fail(resp, "OCR result (%ld bytes) is larger than max_response_size (%zu bytes)",
                    r, resp->body_cap);
    if (r < 0)
        return fail(resp, "cannot serialize the OCR result");
    return 0;
}

static json_t *text_value(const char *text)
{
    /* Tesseract emits UTF-8; json_string() checks it anyway. */
    return json_string(text);
}

static int process_image(struct ocr_state *st, const struct rm_request *req,
                         struct rm_response *resp)
{
    struct ocr_result res;
    char err[512];
    int status = ocr_image(st, req->body, req->body_len, req->deadline_ns, &res,
                           err, sizeof err);
    if (status == 500)
        return fail(resp, "%s", err);
    if (status)
        return set_error(resp, status, "%s", err);

    json_t *jtext = text_value(res.text);
    TessDeleteText(res.text);
    if (!jtext)
        return fail(resp, "OCR text is not valid UTF-8");
    json_t *root = json_object();
    json_object_set_new(root, "text", jtext);
    json_object_set_new(root, "confidence", json_integer(res.confidence));
    json_object_set_new(root, "language", json_string(st->language));
    json_object_set_new(root, "ms", json_real((double)(long)(res.ms * 10 + 0.5) / 10));
    return answer(root, resp);
}

/* The v2 input holding the image: the one named "image", else the only one. */
static json_t *find_image_input(json_t *inputs)
{
    size_t i;
    json_t *in;
    json_array_foreach(inputs, i, in) {
        json_t *name = json_object_get(in, "name");
        if (json_is_string(name) && strcmp(json_string_value(name), "image") == 0)
            return in;
    }
    return json_array_size(inputs) == 1 ? json_array_get(inputs, 0) : NULL;
}

int rm_ocr_v2_decode(const void *body, size_t body_len, json_t **rootp, unsigned char **imgp, size_t *lenp,
                     char *err, size_t errlen)
{
    *rootp = NULL;
    *imgp = NULL;
    *lenp = 0;
    if (body_len == 0)
        return snprintf(err, errlen, "empty body: expected a v2 inference request "
                        "{\"inputs\":[{\"name\":\"image\",...}]}"), 400;
    json_error_t jerr;
    json_t *root = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return snprintf(err, errlen, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text),
               400;
    int status = 400;
    unsigned char *img = NULL;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "v2 request must be a JSON object with \"inputs\"");
        goto bad;
    }
    json_t *id = json_object_get(root, "id");
    if (id && !json_is_string(id)) {
        snprintf(err, errlen, "\"id\" must be a string");
        goto bad;
    }
    json_t *inputs = json_object_get(root, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
        snprintf(err, errlen, "missing \"inputs\": expected [{\"name\":\"image\","
                 "\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"<base64>\"]}]");
        goto bad;
    }
    json_t *in = find_image_input(inputs);
    if (!json_is_object(in)) {
        snprintf(err, errlen, "no input named \"image\" in \"inputs\"");
        goto bad;
    }
    json_t *dt = json_object_get(in, "datatype");
    if (dt && (!json_is_string(dt) || strcmp(json_string_value(dt), "BYTES") != 0)) {
        snprintf(err, errlen, "input \"image\" must have datatype \"BYTES\"");
        goto bad;
    }
    json_t *data = json_object_get(in, "data");
    json_t *b64 = NULL;
    if (json_is_string(data))
        b64 = data; /* a lone string instead of a one-element array */
    else if (json_is_array(data)) {
        if (json_array_size(data) != 1) {
            snprintf(err, errlen, "input \"image\" must hold exactly one image (shape [1]); it has %zu",
                     json_array_size(data));
            goto bad;
        }
        b64 = json_array_get(data, 0);
    }
    if (!json_is_string(b64)) {
        snprintf(err, errlen, "input \"image\" needs \"data\": [\"<base64 of the image>\"]");
        goto bad;
    }
    const char *s = json_string_value(b64);
    size_t slen = json_string_length(b64);
    img = malloc(slen / 4 * 3 + 3);
    if (!img) {
        snprintf(err, errlen, "out of memory decoding a %zu byte input", slen);
        status = 500;
        goto bad;
    }
    char why[512];
    long ilen = base64_decode(s, slen, img, why, sizeof why);
    if (ilen < 0) {
        snprintf(err, errlen, "input \"image\": %s", why);
        goto bad;
    }
    *rootp = root;
    *imgp = img;
    *lenp = (size_t)ilen;
    return 0;
bad:
    free(img);
    json_decref(root);
    return status;
}

static int process_v2(struct ocr_state *st, const struct rm_request *req,
                      struct rm_response *resp)
{
    json_t *root;
    unsigned char *img;
    size_t ilen;
    char err[512];
    int ret = rm_ocr_v2_decode(req->body, req->body_len, &root, &img, &ilen, err, sizeof err);
    if (ret == 500)
        return fail(resp, "%s", err);
    if (ret)
        return set_error(resp, ret, "%s", err);
    json_t *id = json_object_get(root, "id");

    struct ocr_result res;
    int status = ocr_image(st, img, ilen, req->deadline_ns, &res, err, sizeof err);
    if (status == 500) {
        ret = fail(resp, "%s", err);
        goto out;
    }
    if (status) {
        ret = set_error(resp, status, "input \"image\": %s", err);
        goto out;
    }
    json_t *jtext = text_value(res.text);
    TessDeleteText(res.text);
    if (!jtext) {
        ret = fail(resp, "OCR text is not valid UTF-8");
        goto out;
    }

    const char *model = req->pool && req->pool[0] ? req->pool : st->pool;
    json_t *out = json_object();
    json_object_set_new(out, "model_name", json_string(model));
    if (id)
        json_object_set(out, "id", id);
    json_t *outputs = json_array();
    json_array_append_new(outputs,
        json_pack("{s:s, s:s, s:[i], s:[o]}", "name", "text", "datatype", "BYTES",
                  "shape", 1, "data", jtext));
    json_array_append_new(outputs,
        json_pack("{s:s, s:s, s:[i], s:[f]}", "name", "confidence", "datatype", "FP32",
                  "shape", 1, "data", (double)res.confidence));
    json_object_set_new(out, "outputs", outputs);
    json_object_set_new(out, "parameters",
        json_pack("{s:s, s:f}", "language", st->language,
                  "ms", (double)(long)(res.ms * 10 + 0.5) / 10));
    ret = answer(out, resp);
out:
    free(img);
    json_decref(root);
    return ret;
}

/* ------------------------------------------------------------ pages, streamed */

/* One page's chunk: {"page":N,"text_output":"...\n","confidence":C}. The
 * generate extension's /generate merges the chunks, text_output
 * concatenated: the whole document. 0, or -1 when the client is gone. */
static int emit_page(const struct rm_request *req, int page, const struct ocr_result *res)
{
    size_t tl = strlen(res->text);
    char *t = malloc(tl + 2);
    if (!t)
        return -1;
    memcpy(t, res->text, tl);
    t[tl] = '\n';
    t[tl + 1] = '\0';
    json_t *o = json_pack("{s:i, s:s%, s:i, s:f}", "page", page, "text_output", t, tl + 1, "confidence",
                          res->confidence, "ms", (double)(long)(res->ms * 10 + 0.5) / 10);
    free(t);
    char *j = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(o);
    if (!j)
        return -1;
    int r = req->emit(req, j, strlen(j));
    free(j);
    return r;
}

/*
 * The generate extension: {"image":"<base64>"}. A multi-page TIFF streams
 * page by page: each page is decoded and recognized only after the one
 * before went to the client; any other image is one page. An error before
 * the first page is an ordinary error answer; after it, the stream ends
 * with the error (the client sees it as such).
 */
static int process_pages(struct ocr_state *st, const struct rm_request *req, struct rm_response *resp,
                         const unsigned char *img, size_t ilen)
{
    char err[512];
    unsigned char head[16] = {0};
    memcpy(head, img, ilen < sizeof head ? ilen : sizeof head);
    l_int32 fmt = IFF_UNKNOWN;
    if (ilen == 0 || findFileFormatBuffer(head, &fmt) != 0 || !L_FORMAT_IS_TIFF(fmt)) {
        struct ocr_result res;
        int status = ocr_image(st, img, ilen, req->deadline_ns, &res, err, sizeof err);
        if (status == 500)
            return fail(resp, "%s", err);
        if (status)
            return set_error(resp, status, "\"image\": %s", err);
        resp->status = 200;
        snprintf(resp->content_type, sizeof resp->content_type, "application/json");
        emit_page(req, 1, &res);
        TessDeleteText(res.text);
        return 0;
    }
    resp->status = 200;
    snprintf(resp->content_type, sizeof resp->content_type, "application/json");
    for (int n = 0;; n++) {
        l_int32 w = 0, h = 0, bps, spp, xres, cmap, tfmt;
        int saved = quiet_stderr(st->devnull);
        l_ok hr = readHeaderMemTiff(img, ilen, n, &w, &h, &bps, &spp, &xres, &cmap, &tfmt);
        restore_stderr(saved);
        if (hr != 0) {
            if (n == 0)
                return set_error(resp, 400, "\"image\": truncated or corrupt TIFF image (unreadable header)");
            return 0; /* no page n: the document is done */
        }
        if (w <= 0 || h <= 0 || w > OCR_MAX_SIDE || h > OCR_MAX_SIDE || (double)w * h > (double)st->max_pixels) {
            if (n == 0)
                return set_error(resp, 400, "page 1: image of %dx%d pixels is too large", w, h);
            rm_response_set(resp, 500, "text/plain", "page too large", 14);
            return -1;
        }
        saved = quiet_stderr(st->devnull);
        PIX *pix = pixReadMemTiff(img, ilen, n);
        restore_stderr(saved);
        if (!pix) {
            if (n == 0)
                return set_error(resp, 400, "\"image\": truncated or corrupt TIFF image");
            return -1;
        }
        struct ocr_result res;
        /* The request's deadline is for the first page: after it, the
         * stream's limits (stream_idle_timeout, stream_timeout) hold. */
        int status = ocr_pix(st, pix, "TIFF", n == 0 ? req->deadline_ns : 0, &res, err, sizeof err);
        if (status) {
            if (n == 0)
                return status == 500 ? fail(resp, "%s", err) : set_error(resp, status, "page 1: %s", err);
            return -1;
        }
        int r = emit_page(req, n + 1, &res);
        TessDeleteText(res.text);
        if (r != 0)
            return 0; /* the client went away: stop reading pages */
    }
}

/* A JSON body with a top-level "image" string (and no v2 "inputs"): the
 * generate extension's request. */
static int process_generate(struct ocr_state *st, const struct rm_request *req, struct rm_response *resp,
                            json_t *root)
{
    json_t *b64 = json_object_get(root, "image");
    const char *s = json_string_value(b64);
    size_t slen = json_string_length(b64);
    unsigned char *img = malloc(slen / 4 * 3 + 3);
    if (!img)
        return fail(resp, "out of memory decoding a %zu byte input", slen);
    char why[512];
    long ilen = base64_decode(s, slen, img, why, sizeof why);
    int ret;
    if (ilen < 0)
        ret = set_error(resp, 400, "\"image\": %s", why);
    else
        ret = process_pages(st, req, resp, img, (size_t)ilen);
    free(img);
    return ret;
}

/* ------------------------------------------------------------ handler */

static const struct {
    const char *name;
    TessPageSegMode psm;
} psm_names[] = {
    { "auto_osd", PSM_AUTO_OSD },
    { "auto_only", PSM_AUTO_ONLY },
    { "auto", PSM_AUTO },
    { "single_column", PSM_SINGLE_COLUMN },
    { "single_block_vert_text", PSM_SINGLE_BLOCK_VERT_TEXT },
    { "single_block", PSM_SINGLE_BLOCK },
    { "single_line", PSM_SINGLE_LINE },
    { "single_word", PSM_SINGLE_WORD },
    { "circle_word", PSM_CIRCLE_WORD },
    { "single_char", PSM_SINGLE_CHAR },
    { "sparse_text", PSM_SPARSE_TEXT },
    { "sparse_text_osd", PSM_SPARSE_TEXT_OSD },
    { "raw_line", PSM_RAW_LINE },
};

/* PSM 0 (orientation detection only) produces no text: not accepted. */
static int parse_psm(const char *s, TessPageSegMode *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end != s && *end == '\0' && errno == 0) {
        if (v < PSM_AUTO_OSD || v >= PSM_COUNT)
            return -1;
        *out = (TessPageSegMode)v;
        return 0;
    }
    for (size_t i = 0; i < sizeof psm_names / sizeof psm_names[0]; i++)
        if (strcasecmp(s, psm_names[i].name) == 0) {
            *out = psm_names[i].psm;
            return 0;
        }
    return -1;
}

/* See the top comment: make OpenMP parallel regions single-threaded even
 * though OMP_THREAD_LIMIT was read before we could set it. */
static void limit_openmp(void)
{
    void *gomp = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD);
    if (!gomp)
        return; /* Tesseract built without OpenMP: nothing to limit */
    void (*set_levels)(int) = (void (*)(int))dlsym(gomp, "omp_set_max_active_levels");
    if (set_levels)
        set_levels(0);
    dlclose(gomp); /* drops our reference only; libgomp stays loaded */
}

/* Debian names the package of "chi_sim" tesseract-ocr-chi-sim. */
static void debian_package(const char *lang, char *out, size_t outlen)
{
    size_t i = 0;
    for (; lang[i] && lang[i] != '+' && i + 1 < outlen; i++)
        out[i] = lang[i] == '_' ? '-' : (char)tolower((unsigned char)lang[i]);
    out[i] = '\0';
}

/* First language of "a+b+~c" (a '~' one is excluded, not loaded) that
 * Tesseract did not load: 1 with it in out, or 0 when all are loaded. */
static int missing_language(TessBaseAPI *api, const char *lang, char *out, size_t outlen)
{
    char **loaded = TessBaseAPIGetLoadedLanguagesAsVector(api);
    int missing = 0;
    for (const char *p = lang; *p && !missing;) {
        size_t n = strcspn(p, "+");
        if (n > 0 && p[0] != '~') {
            int found = 0;
            for (char **l = loaded; l && *l && !found; l++)
                found = strlen(*l) == n && strncmp(*l, p, n) == 0;
            if (!found) {
                snprintf(out, outlen, "%.*s", (int)n, p);
                missing = 1;
            }
        }
        p += n;
        if (*p == '+')
            p++;
    }
    if (loaded)
        TessDeleteTextArray(loaded);
    return missing;
}

static int ocr_init(void **state, const struct rm_handler_config *cfg,
                    char *err, size_t errlen)
{
    /* Belt and braces: effective when libgomp is loaded later than now (a
     * handler .so dlopen'ed by the worker); limit_openmp() covers the rest. */
    setenv("OMP_THREAD_LIMIT", "1", 1);
    limit_openmp();
    /* Leptonica reports bad client images on stderr; they are the client's
     * problem and answered as 400, not log noise. */
    setMsgSeverity(L_SEVERITY_NONE);

    const char *lang = rm_handler_get(cfg, "language", OCR_DEFAULT_LANGUAGE);
    const char *tessdata = rm_handler_get(cfg, "tessdata", NULL);
    const char *psm_s = rm_handler_get(cfg, "psm", NULL);
    const char *maxpix_s = rm_handler_get(cfg, "max_image_pixels", NULL);

    if (!lang[0] || strlen(lang) >= sizeof ((struct ocr_state *)0)->language) {
        snprintf(err, errlen, "ocr: language \"%s\": expected a Tesseract language "
                 "such as \"eng\" or \"eng+deu\"", lang);
        return RM_INIT_FAILED;
    }
    if (tessdata && !tessdata[0])
        tessdata = NULL;
    TessPageSegMode psm = OCR_DEFAULT_PSM;
    if (psm_s && parse_psm(psm_s, &psm) != 0) {
        snprintf(err, errlen, "ocr: psm \"%s\": expected 1..13 or a name such as "
                 "auto, single_block, single_line, sparse_text", psm_s);
        return RM_INIT_FAILED;
    }
    long max_pixels = OCR_DEFAULT_MAX_PIXELS;
    if (maxpix_s) {
        char *end;
        errno = 0;
        max_pixels = strtol(maxpix_s, &end, 10);
        if (end == maxpix_s || *end || errno || max_pixels <= 0) {
            snprintf(err, errlen, "ocr: max_image_pixels \"%s\": expected a positive "
                     "number of pixels", maxpix_s);
            return RM_INIT_FAILED;
        }
    }

    struct ocr_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "ocr: out of memory");
        return RM_INIT_FAILED;
    }
    snprintf(st->language, sizeof st->language, "%s", lang);
    snprintf(st->pool, sizeof st->pool, "%s", cfg->pool ? cfg->pool : "ocr");
    st->max_pixels = max_pixels;
    st->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

    st->api = TessBaseAPICreate();
    st->monitor = TessMonitorCreate();
    if (!st->api || !st->monitor) {
        snprintf(err, errlen, "ocr: cannot create the Tesseract engine (out of memory?)");
        goto fail;
    }
    const char *where = tessdata ? tessdata : "the default tessdata directory "
                                              "($TESSDATA_PREFIX or the package's)";
    if (TessBaseAPIInit2(st->api, tessdata, lang, OEM_LSTM_ONLY) != 0) {
        char pkg[64];
        debian_package(lang, pkg, sizeof pkg);
        snprintf(err, errlen,
                 "ocr: cannot load Tesseract language \"%s\" (LSTM engine) from %s: "
                 "is %s.traineddata installed there (Debian: tesseract-ocr-%s)?",
                 lang, where, lang, pkg);
        goto fail;
    }
    /* "eng+xx" loads eng, only prints a warning about xx and succeeds: refuse
     * a partial set, the pool would serve the wrong model. */
    char missing[64];
    if (missing_language(st->api, lang, missing, sizeof missing)) {
        char pkg[64];
        debian_package(missing, pkg, sizeof pkg);
        snprintf(err, errlen,
                 "ocr: cannot load Tesseract language \"%s\" of \"%s\" from %s: "
                 "is %s.traineddata installed there (Debian: tesseract-ocr-%s)?",
                 missing, lang, where, missing, pkg);
        goto fail;
    }
    TessBaseAPISetPageSegMode(st->api, psm);
    /* From here on Tesseract's messages are about client images ("Empty
     * page!!", "Image too small to scale!!"): send them nowhere. Init
     * errors above still reached stderr, where an operator wants them. */
    TessBaseAPISetVariable(st->api, "debug_file", "/dev/null");

    *state = st;
    return 0;

fail:
    if (st->api) {
        TessBaseAPIEnd(st->api);
        TessBaseAPIDelete(st->api);
    }
    if (st->monitor)
        TessMonitorDelete(st->monitor);
    if (st->devnull >= 0)
        close(st->devnull);
    free(st);
    return RM_INIT_FAILED;
}

static int ocr_process(void *state, const struct rm_request *req,
                       struct rm_response *resp)
{
    struct ocr_state *st = state;
    resp->body_len = 0;
    if (is_json_type(req->content_type) ||
        starts_with_brace(req->body, req->body_len)) {
        json_t *root = json_loadb(req->body, req->body_len, 0, NULL);
        if (json_is_object(root) && json_is_string(json_object_get(root, "image")) &&
            !json_object_get(root, "inputs") && req->emit) {
            int r = process_generate(st, req, resp, root);
            json_decref(root);
            return r;
        }
        json_decref(root);
        return process_v2(st, req, resp);
    }
    return process_image(st, req, resp);
}

static void ocr_fini(void *state)
{
    struct ocr_state *st = state;
    if (!st)
        return;
    TessBaseAPIEnd(st->api);
    TessBaseAPIDelete(st->api);
    TessMonitorDelete(st->monitor);
    if (st->devnull >= 0)
        close(st->devnull);
    free(st);
}

static const char *const ocr_keys[] = {"language", "tessdata", "psm", "max_image_pixels", NULL};

const struct rm_handler rm_handler_ocr = {
    .abi_version = RM_HANDLER_ABI_VERSION,
    .name = "ocr",
    .keys = ocr_keys,
    .init = ocr_init,
    .process = ocr_process,
    .fini = ocr_fini,
};
