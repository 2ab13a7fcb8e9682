/*
 * worker/handler.h - find a request handler from a pool's `handler =` value.
 *
 * A spec is either the name of a built-in handler ("echo", "chaos", and "ocr"
 * when ringmaster was built with Tesseract) or, when it contains a '/', the
 * path of a shared object exporting RM_HANDLER_SYMBOL (see
 * ringmaster_handler.h). A path without '/' is never searched for in the
 * library path: "handler = foo.so" is read as a built-in name and refused,
 * so a pool can never pick up some unrelated library by accident; write
 * "./foo.so" for a file in the working directory.
 *
 * Contract of a resolved descriptor (what the worker may rely on):
 * abi_version == RM_HANDLER_ABI_VERSION and process != NULL. init and fini
 * MAY BE NULL (no model to load / nothing to free): the caller checks them.
 * The built-ins echo and chaos have neither, so every integration test run
 * with them exercises that path.
 *
 * Nothing here logs: every failure returns -1 with a one-line message that
 * names the failing call and its reason in the caller's err buffer.
 */
#ifndef RM_WORKER_HANDLER_H
#define RM_WORKER_HANDLER_H

#include <stdbool.h>
#include <stddef.h>

#include "ringmaster_handler.h"

/* Built-in descriptors (statically allocated, defined in worker/handlers/). */
extern const struct rm_handler rm_handler_echo;
extern const struct rm_handler rm_handler_chaos;
extern const struct rm_handler rm_handler_stream;
#ifdef RM_HAVE_OCR
extern const struct rm_handler rm_handler_ocr;
#endif
#ifdef RM_HAVE_PYTHON
extern const struct rm_handler rm_handler_python;
#endif

/*
 * Resolve spec to a handler descriptor. On success *out points to it and
 * *dl_handle is the dlopen() handle of its shared object (NULL for a
 * built-in); keep the handle open for as long as *out is used (a worker
 * simply never closes it). out and dl_handle must not be NULL.
 * Does not call init. Returns 0, or -1 with the reason in err.
 */
int rm_handler_resolve(const char *spec, const struct rm_handler **out,
                       void **dl_handle, char *err, size_t errlen);

/* True when spec is the name of a built-in compiled into this binary. */
bool rm_handler_is_builtin(const char *spec);

/*
 * Validate spec for `ringmaster -t` without running the handler's init:
 * a built-in must exist; a path must be an existing regular file that
 * dlopen()s, exports RM_HANDLER_SYMBOL and passes the ABI checks. The shared
 * object stays loaded (its constructor may have started threads running
 * its code): call this in a process that exits afterwards. Note that dlopen() runs the
 * object's constructors in the calling process: checking a path means
 * trusting that file as much as running the pool would.
 * Returns 0, or -1 with the reason in err.
 */
int rm_handler_check(const char *spec, char *err, size_t errlen);

/* Close a handle from rm_handler_resolve (NULL is fine: built-in). */
void rm_handler_unload(void *dl_handle);

#endif
