"""Error pages: Spanish HTML for pages, JSON for /api; never a stack trace."""

from __future__ import annotations

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from readmodel import ReadModelUnavailable

MESSAGES = {
    400: "La solicitud no es válida.",
    401: "Debes iniciar sesión.",
    403: "No tienes permiso para ver esta página.",
    404: "No encontramos lo que buscas.",
    405: "Método no permitido.",
    500: "Ocurrió un error inesperado. Intenta nuevamente más tarde.",
    503: "Los datos no están disponibles en este momento. Intenta nuevamente en unos minutos.",
}
CSRF_MESSAGE = "La sesión del formulario expiró o no es válida. Recarga la página e intenta de nuevo."


def wants_json() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, message: str | None = None):
    message = message or MESSAGES.get(status, MESSAGES[500])
    if wants_json():
        return jsonify(error=message, field=None), status
    return render_template("error.html", status=status, message=message), status


def register(app) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error):
        app.logger.info("CSRF check failed on %s: %s", request.path, error.description)
        return error_response(400, CSRF_MESSAGE)

    @app.errorhandler(ReadModelUnavailable)
    def read_model_unavailable(error):
        app.logger.error("read model unavailable: %s", error)
        return error_response(503)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return error_response(error.code or 500)

    @app.errorhandler(InternalServerError)
    def internal_error(error):
        original = getattr(error, "original_exception", None)
        if original is not None:
            app.logger.error("unhandled error on %s", request.path, exc_info=original)
        return error_response(500)
