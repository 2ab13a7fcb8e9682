/*
 * worker/handlers/python.c - built-in `python`: serve a Python model.
 *
 * One CPython 3.11 interpreter per worker process (prefork: no GIL
 * contention between workers). ringmaster links libpython itself, so the
 * interpreter's symbols are in the global scope and C extension modules
 * (numpy, scikit-learn, torch) resolve them when they are imported.
 *
 * Pool keys:
 *   app = package.module:Name   the model: a class or a function (required)
 *   python_path = DIR[:DIR...]  folders put first on sys.path, relative to
 *                               the configuration file's folder
 *   anything else               reaches the model as a dict of strings
 *
 * The Python side (the `ringmaster` module: Request, Response, BadRequest,
 * v2 tensors, output to the log) is worker/handlers/ringmaster.py, compiled
 * into ringmaster. The interpreter installs no signal handler of its own:
 * signals stay ringmaster's. See docs/handlers.md.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "worker/handler.h"
#include "worker/handlers/python_runtime.h" /* RM_PYTHON_RUNTIME: ringmaster.py as a string */

struct py_state {
    PyObject *mod;      /* the ringmaster module */
    PyObject *handle;   /* ringmaster._handle */
    PyObject *pool;     /* str */
};

static void (*log_fn)(int level, const char *msg);

static void say(int level, const char *msg)
{
    if (log_fn)
        log_fn(level, msg);
    else
        fprintf(stderr, "%s\n", msg);
}

/* _ringmaster.log(level, msg) */
static PyObject *py_log(PyObject *self, PyObject *args)
{
    (void)self;
    int level;
    const char *msg;
    if (!PyArg_ParseTuple(args, "is", &level, &msg))
        return NULL;
    say(level, msg);
    Py_RETURN_NONE;
}

/* The request being run (py_process), for emit() and cancelled(). */
static const struct rm_request *cur_req;
static struct rm_response *cur_resp;
static int cur_streamed;

/* _ringmaster.emit(data, status, content_type) -> bool: one chunk of a
 * streamed answer (status and type count at the first); False when the
 * client is gone. */
static PyObject *py_emit(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer b;
    int status;
    const char *ct;
    if (!PyArg_ParseTuple(args, "y*iz", &b, &status, &ct))
        return NULL;
    if (!cur_req || !cur_req->emit) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_RuntimeError, "emit outside of a request");
        return NULL;
    }
    if (!cur_streamed) {
        cur_resp->status = status;
        if (ct)
            snprintf(cur_resp->content_type, sizeof cur_resp->content_type, "%s", ct);
    }
    cur_streamed = 1;
    int r;
    /* emit may wait for a slow client: other Python threads run meanwhile */
    Py_BEGIN_ALLOW_THREADS
    r = cur_req->emit(cur_req, b.buf, (size_t)b.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&b);
    return PyBool_FromLong(r == 0);
}

/* _ringmaster.cancelled() -> bool: the client went away. */
static PyObject *py_cancelled(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    return PyBool_FromLong(cur_req && cur_req->cancelled && cur_req->cancelled(cur_req));
}

static PyMethodDef c_methods[] = {
    {"log", py_log, METH_VARARGS, "One line in ringmaster's log."},
    {"emit", py_emit, METH_VARARGS, "One chunk of a streamed answer; False when the client is gone."},
    {"cancelled", py_cancelled, METH_NOARGS, "True when the request's client went away."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef c_module = {PyModuleDef_HEAD_INIT, "_ringmaster", NULL, -1, c_methods,
                                      NULL, NULL, NULL, NULL};

static PyObject *init_c_module(void)
{
    return PyModule_Create(&c_module);
}

/* The pending Python exception as text: "Type: message" and, for the log,
 * the whole traceback, one line at a time. Clears the exception. */
static void take_error(char *err, size_t errlen, const char *what)
{
    PyObject *type = NULL, *exc = NULL, *tb = NULL;
    PyErr_Fetch(&type, &exc, &tb);
    if (!type) {
        snprintf(err, errlen, "%s failed", what);
        return;
    }
    PyErr_NormalizeException(&type, &exc, &tb);
    if (!exc) {
        exc = Py_None;
        Py_INCREF(exc);
    }
    PyObject *tbmod = PyImport_ImportModule("traceback");
    PyObject *lines = tbmod ? PyObject_CallMethod(tbmod, "format_exception", "OOO", type, exc,
                                                  tb ? tb : Py_None) : NULL;
    PyObject *joined = NULL;
    if (lines) {
        PyObject *empty = PyUnicode_FromString("");
        joined = empty ? PyUnicode_Join(empty, lines) : NULL;
        Py_XDECREF(empty);
    }
    const char *text = joined ? PyUnicode_AsUTF8(joined) : NULL;
    if (text) {
        /* The whole traceback in the log; err gets what fits, the end
         * (the exception and its cause) being the part that matters. */
        char line[1024];
        const char *p = text;
        while (*p) {
            size_t n = strcspn(p, "\n");
            snprintf(line, sizeof line, "%s: %.*s", what, (int)(n < sizeof line - 64 ? n : sizeof line - 64), p);
            say(3, line);
            p += n + (p[n] == '\n');
        }
        size_t len = strlen(text);
        while (len && text[len - 1] == '\n')
            len--;
        if (len + 1 <= errlen)
            snprintf(err, errlen, "%.*s", (int)len, text);
        else
            snprintf(err, errlen, "...%s", text + len - (errlen - 4));
        for (char *c = err; *c; c++)
            if (*c == '\n')
                *c = ' ';
    } else {
        PyErr_Clear();
        PyObject *s = PyObject_Str(exc);
        snprintf(err, errlen, "%s: %s", what, s && PyUnicode_AsUTF8(s) ? PyUnicode_AsUTF8(s) : "?");
        Py_XDECREF(s);
    }
    PyErr_Clear();
    Py_XDECREF(joined);
    Py_XDECREF(lines);
    Py_XDECREF(tbmod);
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
}

/* Prepend each DIR of python_path (relative to config_dir) to sys.path. */
static int add_paths(const char *spec, const char *config_dir, char *err, size_t errlen)
{
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    if (!path || !PyList_Check(path)) {
        snprintf(err, errlen, "sys.path is not a list");
        return -1;
    }
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", spec);
    Py_ssize_t at = 0;
    for (char *save = NULL, *dir = strtok_r(buf, ":,", &save); dir; dir = strtok_r(NULL, ":,", &save)) {
        while (*dir == ' ')
            dir++;
        if (!*dir)
            continue;
        char full[8192];
        if (dir[0] == '/')
            snprintf(full, sizeof full, "%s", dir);
        else
            snprintf(full, sizeof full, "%s/%s", config_dir, dir);
        PyObject *s = PyUnicode_DecodeFSDefault(full);
        if (!s || PyList_Insert(path, at++, s) < 0) {
            Py_XDECREF(s);
            take_error(err, errlen, "python_path");
            return -1;
        }
        Py_DECREF(s);
    }
    return 0;
}

/* The ringmaster module from its source compiled into ringmaster. */
static PyObject *load_runtime(char *err, size_t errlen)
{
    PyObject *code = Py_CompileString(RM_PYTHON_RUNTIME, "ringmaster.py", Py_file_input);
    if (!code) {
        take_error(err, errlen, "ringmaster runtime");
        return NULL;
    }
    PyObject *mod = PyImport_ExecCodeModule("ringmaster", code);
    Py_DECREF(code);
    if (!mod)
        take_error(err, errlen, "ringmaster runtime");
    return mod;
}

static int py_init(void **state, const struct rm_handler_config *cfg, char *err, size_t errlen)
{
    log_fn = cfg->log;
    const char *app = rm_handler_get(cfg, "app", NULL);
    if (!app || !*app) {
        snprintf(err, errlen, "handler python needs app = package.module:Name in [pool %s]", cfg->pool);
        return RM_INIT_FAILED;
    }
    if (Py_IsInitialized()) {
        snprintf(err, errlen, "one python pool per worker process");
        return RM_INIT_FAILED;
    }
    if (PyImport_AppendInittab("_ringmaster", init_c_module) < 0) {
        snprintf(err, errlen, "PyImport_AppendInittab failed");
        return RM_INIT_FAILED;
    }
    PyConfig pc;
    PyConfig_InitPythonConfig(&pc);
    pc.install_signal_handlers = 0; /* signals stay ringmaster's */
    pc.parse_argv = 0;
    pc.buffered_stdio = 0;
    PyStatus st = PyConfig_SetBytesString(&pc, &pc.program_name, "ringmaster");
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&pc);
    PyConfig_Clear(&pc);
    if (PyStatus_Exception(st)) {
        snprintf(err, errlen, "Python failed to start: %s%s%s", st.func ? st.func : "",
                 st.func ? ": " : "", st.err_msg ? st.err_msg : "?");
        return RM_INIT_FAILED;
    }
    const char *pp = rm_handler_get(cfg, "python_path", NULL);
    if (pp && add_paths(pp, cfg->config_dir ? cfg->config_dir : ".", err, errlen) < 0)
        return RM_INIT_FAILED;

    PyObject *mod = load_runtime(err, errlen);
    if (!mod)
        return RM_INIT_FAILED;
    PyObject *r = PyObject_CallMethod(mod, "_setup_output", NULL);
    if (!r) {
        take_error(err, errlen, "ringmaster runtime");
        return RM_INIT_FAILED;
    }
    Py_DECREF(r);

    /* The model's configuration: every key but ours, as strings. */
    PyObject *conf = PyDict_New();
    for (size_t i = 0; conf && i < cfg->nkv; i++) {
        if (strcmp(cfg->kv[i].key, "app") == 0 || strcmp(cfg->kv[i].key, "python_path") == 0)
            continue;
        PyObject *v = PyUnicode_FromString(cfg->kv[i].value);
        if (!v || PyDict_SetItemString(conf, cfg->kv[i].key, v) < 0) {
            Py_XDECREF(v);
            Py_CLEAR(conf);
            break;
        }
        Py_DECREF(v);
    }
    if (!conf) {
        take_error(err, errlen, "config");
        return RM_INIT_FAILED;
    }
    char what[256];
    snprintf(what, sizeof what, "app %s", app);
    r = PyObject_CallMethod(mod, "_load", "sO", app, conf);
    Py_DECREF(conf);
    if (!r) {
        take_error(err, errlen, what);
        return RM_INIT_FAILED;
    }
    Py_DECREF(r);

    struct py_state *s = PyMem_RawCalloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return RM_INIT_FAILED;
    }
    s->mod = mod;
    s->handle = PyObject_GetAttrString(mod, "_handle");
    s->pool = PyUnicode_FromString(cfg->pool);
    if (!s->handle || !s->pool) {
        take_error(err, errlen, "ringmaster runtime");
        return RM_INIT_FAILED;
    }
    /* What the model built stays shared after fork (preload): keep the
     * collector off those pages. */
    PyObject *gc = PyImport_ImportModule("gc");
    PyObject *fr = gc ? PyObject_CallMethod(gc, "collect", NULL) : NULL;
    Py_XDECREF(fr);
    fr = gc ? PyObject_CallMethod(gc, "freeze", NULL) : NULL;
    if (!fr)
        PyErr_Clear();
    Py_XDECREF(fr);
    Py_XDECREF(gc);
    *state = s;
    return 0;
}

static int py_process(void *state, const struct rm_request *req, struct rm_response *resp)
{
    struct py_state *s = state;
    /* The request, zero-copy: a read-only view of shared memory, released
     * after the call (a model that kept it gets an error, not stale bytes). */
    PyObject *mv = PyMemoryView_FromMemory((char *)req->body, (Py_ssize_t)req->body_len, PyBUF_READ);
    double deadline = req->deadline_ns == UINT64_MAX ? INFINITY : (double)req->deadline_ns / 1e9;
    cur_req = req;
    cur_resp = resp;
    cur_streamed = 0;
    PyObject *r = mv ? PyObject_CallFunction(s->handle, "OsIdO", mv, req->content_type ? req->content_type : "",
                                             (int)req->attempt, deadline, s->pool)
                     : NULL;
    if (mv) {
        PyObject *rel = PyObject_CallMethod(mv, "release", NULL);
        if (!rel)
            PyErr_Clear();
        Py_XDECREF(rel);
        Py_DECREF(mv);
    }
    char err[512];
    if (!r) {
        cur_req = NULL;
        take_error(err, sizeof err, "infer");
        rm_response_set(resp, 500, "text/plain", err, strnlen(err, sizeof err) < resp->body_cap ? strnlen(err, sizeof err) : 0);
        return -1;
    }
    int status = 500;
    const char *ct = NULL;
    char *data = NULL;
    Py_ssize_t len = 0;
    if (!PyArg_ParseTuple(r, "izy#", &status, &ct, &data, &len)) {
        take_error(err, sizeof err, "infer");
        Py_DECREF(r);
        rm_response_set(resp, 500, "text/plain", err, strnlen(err, sizeof err) < resp->body_cap ? strnlen(err, sizeof err) : 0);
        return -1;
    }
    int rc;
    cur_req = NULL;
    if (cur_streamed) {
        /* The answer went out in chunks; a status of 500 and up here is
         * the generator failing (or the client gone) mid-stream. */
        rc = status >= 500 ? -1 : 0;
    } else if ((size_t)len > resp->body_cap) {
        int n = snprintf(err, sizeof err, "{\"error\":\"answer of %zd bytes is larger than max_response_size (%zu)\"}",
                         len, resp->body_cap);
        rc = rm_response_set(resp, 500, "application/json", err, (size_t)n <= resp->body_cap ? (size_t)n : 0);
    } else {
        rc = rm_response_set(resp, status, ct ? ct : "application/octet-stream", data, (size_t)len);
    }
    Py_DECREF(r);
    return rc;
}

static void py_fini(void *state)
{
    struct py_state *s = state;
    if (!s)
        return;
    PyObject *r = PyObject_CallMethod(s->mod, "_close", NULL);
    if (!r) {
        char err[512];
        take_error(err, sizeof err, "close");
    }
    Py_XDECREF(r);
    /* No Py_Finalize: the process exits next, and finalizing could wait
     * on threads a model started. */
}

static void py_atfork(void *state, int phase)
{
    (void)state;
    if (phase == RM_FORK_PREPARE)
        PyOS_BeforeFork();
    else if (phase == RM_FORK_PARENT)
        PyOS_AfterFork_Parent();
    else
        PyOS_AfterFork_Child();
}

static const char *const python_keys[] = {"app", "python_path", "*", NULL};

const struct rm_handler rm_handler_python = {
    .abi_version = RM_HANDLER_ABI_VERSION,
    .name = "python",
    .keys = python_keys,
    .init = py_init,
    .process = py_process,
    .fini = py_fini,
    .atfork = py_atfork,
};
