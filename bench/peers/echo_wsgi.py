# echo_wsgi.py - WSGI echo app for bench/peers_availability.sh (gunicorn, uWSGI):
# the POST body back with 200.
def app(environ, start_response):
    try:
        n = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        n = 0
    body = environ["wsgi.input"].read(n) if n > 0 else b""
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = app
