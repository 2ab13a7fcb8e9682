/*
 * worker/handler.c - resolve a pool's `handler =` spec to a descriptor:
 * a built-in from the table below, or a shared object loaded with dlopen().
 */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "worker/handler.h"

static const struct rm_handler *const builtins[] = {
    &rm_handler_echo,
    &rm_handler_chaos,
    &rm_handler_stream,
#ifdef RM_HAVE_OCR
    &rm_handler_ocr,
#endif
#ifdef RM_HAVE_PYTHON
    &rm_handler_python,
#endif
};

#define NBUILTINS (sizeof builtins / sizeof builtins[0])

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* dlerror() can return NULL when the loader kept no message; never print
 * "(null)" into a user-facing error. */
static const char *dl_reason(void)
{
    const char *e = dlerror();
    return e ? e : "unknown dynamic loader error";
}

static const struct rm_handler *find_builtin(const char *name)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        if (strcmp(builtins[i]->name, name) == 0)
            return builtins[i];
    return NULL;
}

bool rm_handler_is_builtin(const char *spec)
{
    return spec && find_builtin(spec) != NULL;
}

static int resolve_builtin(const char *spec, const struct rm_handler **out,
                           char *err, size_t errlen)
{
    const struct rm_handler *h = find_builtin(spec);
    if (h) {
        *out = h;
        return 0;
    }
#ifndef RM_HAVE_OCR
    /* Say why rather than pretend the name is unknown: the fix is a rebuild,
     * not a typo. */
    if (strcmp(spec, "ocr") == 0) {
        set_err(err, errlen,
                "built-in handler \"ocr\" is not available: ringmaster was "
                "built without Tesseract (--disable-ocr)");
        return -1;
    }
#endif
    /* The list comes from the table, so it never names a handler this build
     * does not have. */
    char list[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < NBUILTINS && used < sizeof list; i++) {
        int n = snprintf(list + used, sizeof list - used, "%s%s",
                         i ? ", " : "", builtins[i]->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    set_err(err, errlen,
            "unknown built-in handler \"%s\" (built-ins: %s; a handler "
            "shared object is given by a path containing '/')",
            spec, list);
    return -1;
}

/*
 * dlopen() the object and run the checks that do not need init. On success
 * *out and *handle are set; on failure the object is closed again.
 */
static int load_shared(const char *path, const struct rm_handler **out,
                       void **handle, char *err, size_t errlen)
{
    /* RTLD_NOW: an unresolved symbol fails here, with the loader's message,
     * instead of killing the worker at the first request. RTLD_LOCAL: two
     * pools' handlers may export the same symbol names without one
     * interposing on the other. */
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        set_err(err, errlen, "dlopen(\"%s\"): %s", path, dl_reason());
        return -1;
    }

    /* dlsym() may legitimately return NULL for a symbol defined as NULL, so
     * the error is told by dlerror(), cleared first. */
    dlerror();
    void *sym = dlsym(dl, RM_HANDLER_SYMBOL);
    const char *dlerr = dlerror();
    if (dlerr || !sym) {
        set_err(err, errlen, "dlsym(\"%s\") in %s: %s", RM_HANDLER_SYMBOL,
                path, dlerr ? dlerr : "symbol is NULL");
        dlclose(dl);
        return -1;
    }

    /* POSIX guarantees a function pointer survives the trip through void *
     * for dlsym's sake; memcpy keeps compilers quiet under -Wpedantic. */
    rm_handler_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);
    const struct rm_handler *h = entry();
    if (!h) {
        set_err(err, errlen, "%s(): returned NULL in %s", RM_HANDLER_SYMBOL,
                path);
        dlclose(dl);
        return -1;
    }
    if (h->abi_version < RM_HANDLER_ABI_MIN || h->abi_version > RM_HANDLER_ABI_VERSION) {
        set_err(err, errlen,
                "%s(): abi_version %u, expected %u to %u in %s (rebuild the handler "
                "against this ringmaster's ringmaster_handler.h)",
                RM_HANDLER_SYMBOL, (unsigned)h->abi_version, (unsigned)RM_HANDLER_ABI_MIN,
                (unsigned)RM_HANDLER_ABI_VERSION, path);
        dlclose(dl);
        return -1;
    }
    if (h->abi_version < 2) {
        /* A version 1 descriptor ends before atfork: never read past it.
         * This process's own copy, with the newer fields NULL (one handler
         * per worker process). */
        static struct rm_handler v1;
        memset(&v1, 0, sizeof v1);
        memcpy(&v1, h, offsetof(struct rm_handler, atfork));
        h = &v1;
    }
    if (!h->process) {
        set_err(err, errlen, "%s(): descriptor has no process() in %s",
                RM_HANDLER_SYMBOL, path);
        dlclose(dl);
        return -1;
    }
    *out = h;
    *handle = dl;
    return 0;
}

int rm_handler_resolve(const char *spec, const struct rm_handler **out,
                       void **dl_handle, char *err, size_t errlen)
{
    if (!out || !dl_handle) {
        set_err(err, errlen, "rm_handler_resolve: out and dl_handle are required");
        return -1;
    }
    *out = NULL;
    *dl_handle = NULL;
    if (!spec || !*spec) {
        set_err(err, errlen, "empty handler (a built-in name or a path to a "
                             "handler shared object)");
        return -1;
    }
    if (!strchr(spec, '/'))
        return resolve_builtin(spec, out, err, errlen);
    return load_shared(spec, out, dl_handle, err, errlen);
}

int rm_handler_check(const char *spec, char *err, size_t errlen)
{
    if (spec && *spec && strchr(spec, '/')) {
        /* stat() first: "No such file or directory" or "is a directory" read
         * better than whatever dlopen() makes of them. */
        struct stat st;
        if (stat(spec, &st) != 0) {
            set_err(err, errlen, "stat(\"%s\"): %s", spec, strerror(errno));
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            set_err(err, errlen, "handler \"%s\" is not a regular file", spec);
            return -1;
        }
    }
    const struct rm_handler *h;
    void *dl;
    if (rm_handler_resolve(spec, &h, &dl, err, errlen) != 0)
        return -1;
    /* Left loaded: the check runs in a child that exits after it, and a
     * constructor may have started threads that run the library's code
     * (OpenMP pools do): dlclose would unmap it under them. */
    (void)dl;
    return 0;
}

void rm_handler_unload(void *dl_handle)
{
    if (dl_handle)
        dlclose(dl_handle);
}
