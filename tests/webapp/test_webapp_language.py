"""The English switch covers the account and security pages.

Every page of the flow (log in, register, verify the e-mail, reset and change the password, sessions, second
factor, sharing) is walked with the Flask test client, including the error messages re-shown on bad input, the
flashes and the throttled answer: in Spanish (the default) each page keeps its es-CL texts; after "View in
English" each page has its English texts and no Spanish left (user data and the "Ver en español" button aside).
"""

from __future__ import annotations

import email
import email.policy
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pyotp
import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from portal_testkit import ANA, BRUNO, AuthActions, csrf_token_of
from webapp import create_app

ANA_PROOF = {"client_number": "10000001", "rut": "12.345.678-5", "bill_total": "$35.700"}
NEW_EMAIL = "ana.nueva@example.cl"
GOOD_PASSWORD = "mi casa tiene paneles solares"
CHANGED_PASSWORD = "otra frase larga para mi cuenta"
THIRD_PARTY = "Acme Energy Ltd"
TRANSLATIONS = Path(__file__).resolve().parents[2] / "webapp" / "translations" / "en" / "LC_MESSAGES"
ACCOUNT_SOURCES = {f"webapp/templates/{name}.html" for name in (
    "account", "change_password", "forgot", "login", "message", "mfa", "mfa_login", "register", "sessions",
    "set_password", "sharing")} | {"webapp/auth.py", "webapp/accounts.py", "webapp/sharing.py", "webapp/access.py"}
LINK = re.compile(r"(/(?:register/verify|password/reset)/[A-Za-z0-9_\-]+)")

# page -> (Spanish text, its English text) pairs the page must show in each language
EXPECTED = {
    "login": [("Iniciar sesión", "Log in"), ("Correo electrónico", "E-mail"), ("Contraseña", "Password"),
              ("Ingresar", "Log in"), ("¿Olvidaste tu contraseña?", "Forgot your password?"),
              ("Crear una cuenta", "Create an account")],
    "login required": [("Inicia sesión para continuar.", "Log in to continue.")],
    "login failed": [("Correo o contraseña incorrectos.", "Wrong e-mail or password.")],
    "login throttled": [("Demasiados intentos fallidos.", "Too many failed attempts.")],
    "form expired": [("La sesión del formulario expiró", "The form's session expired")],
    "register": [("Crear una cuenta", "Create an account"), ("Número de cliente", "Client number"),
                 ("RUT del titular", "Account holder's RUT"), ("Continuar", "Continue")],
    "register errors": [("El número de cliente tiene 8 dígitos.", "The client number has 8 digits."),
                        ("El RUT no es válido", "The RUT is not valid"),
                        ("Escribe el total a pagar de tu última boleta", "Enter the amount due on your latest bill"),
                        ("Escribe un correo electrónico válido.", "Enter a valid e-mail address.")],
    "register sent": [("Revisa tu correo", "Check your e-mail"),
                      ("Si los datos corresponden a un suministro", "If the details match a supply"),
                      ("Volver a iniciar sesión", "Back to log in")],
    "verify": [("Elige tu contraseña", "Choose your password"), ("Cuenta:", "Account:"),
               ("Repite la contraseña", "Repeat the password"), ("Guardar", "Save")],
    "verify mismatch": [("Las contraseñas no coinciden.", "The passwords do not match.")],
    "verify too short": [("La contraseña debe tener al menos 12 caracteres.",
                          "The password must have at least 12 characters.")],
    "verify too common": [("Esa contraseña es demasiado común.", "That password is too common.")],
    "verify done": [("Tu cuenta está lista.", "Your account is ready.")],
    "link invalid": [("Enlace no válido", "Invalid link"), ("El enlace no es válido o ya expiró.",
                                                            "The link is not valid or has expired.")],
    "forgot": [("Restablecer contraseña", "Reset your password"), ("Correo electrónico de tu cuenta",
                                                                   "Your account's e-mail"),
               ("Enviar enlace", "Send link")],
    "forgot sent": [("Si existe una cuenta con ese correo", "If an account has that e-mail")],
    "reset": [("Elige una nueva contraseña", "Choose a new password")],
    "reset mismatch": [("Las contraseñas no coinciden.", "The passwords do not match.")],
    "reset done": [("Cambiaste tu contraseña. Inicia sesión con la nueva.",
                    "You changed your password. Log in with the new one.")],
    "account": [("Mi cuenta", "My account"), ("Cambiar contraseña", "Change password"),
                ("Sesiones activas (2)", "Active sessions (2)"), ("desactivada", "off"),
                ("Compartir mis datos con terceros (opcional)", "Share my data with third parties (optional)")],
    "change password": [("Contraseña actual", "Current password"), ("Repite la nueva contraseña",
                                                                    "Repeat the new password"),
                        ("Cambiar", "Change")],
    "change password wrong current": [("La contraseña actual no es correcta.", "The current password is wrong.")],
    "change password mismatch": [("Las contraseñas no coinciden.", "The passwords do not match.")],
    "change password personal": [("La contraseña no puede contener tu RUT, tu correo ni tu nombre.",
                                  "The password must not contain your RUT, your e-mail or your name.")],
    "change password done": [("Cambiaste tu contraseña. Cerramos tus otras sesiones.",
                              "You changed your password. We logged out your other sessions.")],
    "sessions": [("Sesiones activas", "Active sessions"), ("Último uso (UTC)", "Last used (UTC)"),
                 ("Navegador", "Browser"), ("Dirección IP", "IP address"), ("Esta sesión", "This session"),
                 ("Cerrar", "End")],
    "session ended": [("Cerramos esa sesión.", "We ended that session.")],
    "mfa off": [("Verificación en dos pasos", "Two-step verification"), ("Configurar", "Set up"),
                ("Protege tu cuenta", "Protect your account")],
    "mfa setup": [("Agrega esta cuenta en tu aplicación de autenticación", "Add this account to your authenticator app"),
                  ("Código de 6 dígitos", "6-digit code"), ("Activar", "Turn on")],
    "mfa enable wrong code": [("El código no es válido.", "The code is not valid.")],
    "mfa recovery codes": [("Guarda estos códigos de recuperación", "Keep these recovery codes")],
    "account mfa on": [("activada (10 códigos de recuperación disponibles)", "on (10 recovery codes left)")],
    "mfa on": [("La verificación en dos pasos está activada.", "Two-step verification is on."),
               ("Código actual o de recuperación", "Current or recovery code"), ("Desactivar", "Turn off")],
    "mfa disable wrong": [("La contraseña o el código no son correctos.", "The password or the code is wrong.")],
    "logged out": [("Cerraste tu sesión.", "You logged out.")],
    "mfa login": [("Código de tu aplicación de autenticación", "Code from your authenticator app"),
                  ("Verificar", "Verify")],
    "mfa login wrong code": [("El código no es válido.", "The code is not valid.")],
    "mfa login expired": [("Vuelve a ingresar tu correo y contraseña.", "Enter your e-mail and password again.")],
    "mfa disabled": [("Desactivaste la verificación en dos pasos.", "You turned off two-step verification.")],
    "sharing": [("Compartir mis datos con terceros", "Share my data with third parties"),
                ("No has autorizado a nadie.", "You have not authorised anyone."),
                ("Nombre del tercero", "Third party's name"), ("Hasta, sin incluir (máximo 12 meses)",
                                                               "To, not included (12 months at most)"),
                ("Consumo", "Consumption"), ("Boletas", "Bills"), ("Autorizar", "Authorise")],
    "sharing no name": [("Escribe el nombre del tercero (hasta 100 caracteres).",
                         "Enter the third party's name (up to 100 characters).")],
    "sharing no kinds": [("Elige qué datos compartir", "Choose which data to share")],
    "sharing too long": [("El período compartido puede ser de hasta 12 meses.",
                          "The shared period can be at most 12 months.")],
    "sharing granted": [("Autorización creada para", "Authorisation created for"), ("Vigente", "Active"),
                        ("Revocar", "Revoke"), ("2025-01-01 a 2025-07-01", "2025-01-01 to 2025-07-01")],
    "sharing revoked": [("Revocada", "Revoked")],
    "mfa required": [("Debes activar la verificación en dos pasos para continuar.",
                      "You need to turn on two-step verification to continue.")],
}

SPANISH_CHARACTERS = re.compile(r"[áéíóúñ¿¡]", re.IGNORECASE)
SPANISH_WORDS = {
    "al", "cada", "con", "correo", "cuenta", "de", "del", "desde", "el", "en", "es", "hasta", "la", "las", "los",
    "mis", "para", "por", "que", "se", "sin", "su", "sus", "tu", "tus", "una", "ver", "volver", "y",
}


class _Texts(HTMLParser):
    """The visible texts and labelling attributes of a page, except inside an element marked Spanish
    (the "Ver en español" button), scripts and <code> (secrets, tokens, URIs)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, bool]] = []
        self.texts: list[str] = []

    def _skipped(self) -> bool:
        return any(skip for _, skip in self.stack)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        skip = (attributes.get("lang") or "").startswith("es") or tag in ("script", "style", "code")
        if not skip and not self._skipped():
            self.texts.extend(attributes[name] for name in ("title", "aria-label", "alt", "placeholder")
                              if attributes.get(name))
        if tag not in self.VOID:
            self.stack.append((tag, skip))

    def handle_endtag(self, tag):
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                break

    def handle_data(self, data):
        if data.strip() and not self._skipped():
            self.texts.append(data.strip())


def spanish_left(html: str, data: list[str]) -> list[str]:
    """Texts of an English page that still read as Spanish, once the customer's own data is blanked out."""
    parser = _Texts()
    parser.feed(html)
    found = []
    for text in parser.texts:
        for value in data:
            text = text.replace(value, " ")
        words = set(re.findall(r"[^\W\d_]+", text.lower()))
        if SPANISH_CHARACTERS.search(text) or words & SPANISH_WORDS:
            found.append(text)
    return found


def last_link(data_dir: Path) -> str:
    messages = sorted((Path(data_dir) / "outbox").glob("*.eml"))
    assert messages, "no mail in the outbox"
    body = email.message_from_bytes(messages[-1].read_bytes(), policy=email.policy.default).get_content()
    return LINK.search(body).group(1)


class Walk:
    """A customer going through every account page with one browser, recording each page as shown."""

    def __init__(self, client, data_dir: Path):
        self.client = client
        self.data_dir = data_dir
        self.pages: dict[str, str] = {}

    def keep(self, name: str, response, status: int = 200) -> str:
        html = response.get_data(as_text=True)
        assert response.status_code == status, (name, response.status_code, html[:300])
        self.pages[name] = html
        return html

    def get(self, name: str, path: str, status: int = 200) -> str:
        return self.keep(name, self.client.get(path, follow_redirects=True), status)

    def post(self, name: str | None, path: str, data: dict, page: str | None = None, status: int = 200,
             client=None) -> str:
        client = client or self.client
        token = csrf_token_of(client.get(page or path, follow_redirects=True).get_data(as_text=True))
        response = client.post(path, data={**data, "csrf_token": token}, follow_redirects=True)
        if name is None:
            assert response.status_code == status, (path, response.status_code)
            return response.get_data(as_text=True)
        return self.keep(name, response, status)

    def anonymous_pages(self) -> None:
        self.get("login", "/login")
        self.get("login required", "/account")
        self.post("login failed", "/login", {"email": ANA["email"], "password": "no es la clave"})
        for _ in range(5):
            self.post(None, "/login", {"email": "nadie@example.cl", "password": "tampoco es la clave"})
        self.post("login throttled", "/login", {"email": "nadie@example.cl", "password": "otra vez"}, status=429)
        self.keep("form expired", self.client.post("/login", data={"email": ANA["email"]}), 400)

        self.get("register", "/register")
        self.post("register errors", "/register",
                  {"client_number": "123", "rut": "12.345.678-4", "bill_total": "mucho", "email": "sin-arroba"})
        self.post("register sent", "/register", {**ANA_PROOF, "email": NEW_EMAIL})
        link = last_link(self.data_dir)
        self.get("verify", link)
        self.post("verify mismatch", link, {"password": GOOD_PASSWORD, "password_confirm": GOOD_PASSWORD + "!"})
        self.post("verify too short", link, {"password": "corta", "password_confirm": "corta"})
        self.post("verify too common", link, {"password": "password1234", "password_confirm": "password1234"})
        self.post("verify done", link, {"password": GOOD_PASSWORD, "password_confirm": GOOD_PASSWORD})
        self.get("link invalid", link, status=404)

        self.get("forgot", "/password/forgot")
        self.post("forgot sent", "/password/forgot", {"email": BRUNO["email"]})
        link = last_link(self.data_dir)
        self.get("reset", link)
        self.post("reset mismatch", link, {"password": GOOD_PASSWORD, "password_confirm": "otra cosa distinta"})
        self.post("reset done", link, {"password": GOOD_PASSWORD, "password_confirm": GOOD_PASSWORD})

    def account_pages(self, app) -> None:
        other_browser = app.test_client()
        assert AuthActions(other_browser).login().status_code == 302
        assert self.post(None, "/login", {"email": ANA["email"], "password": ANA["password"]})
        self.get("account", "/account")
        self.get("change password", "/account/password")
        self.post("change password wrong current", "/account/password",
                  {"current_password": "no es la clave", "password": GOOD_PASSWORD, "password_confirm": GOOD_PASSWORD})
        self.post("change password mismatch", "/account/password",
                  {"current_password": ANA["password"], "password": GOOD_PASSWORD, "password_confirm": "x"})
        self.post("change password personal", "/account/password",
                  {"current_password": ANA["password"], "password": "ana perez 12345678",
                   "password_confirm": "ana perez 12345678"})
        self.get("sessions", "/account/sessions")
        other = re.search(r'action="(/account/sessions/[^"]+/end)"', self.pages["sessions"]).group(1)
        self.post("session ended", other, {}, page="/account/sessions")
        self.post("change password done", "/account/password",
                  {"current_password": ANA["password"], "password": CHANGED_PASSWORD,
                   "password_confirm": CHANGED_PASSWORD})

        self.get("mfa off", "/account/mfa")
        html = self.post("mfa setup", "/account/mfa/setup", {}, page="/account/mfa")
        secret = re.search(r'class="totp-secret">([A-Z2-7]+)<', html).group(1)
        self.post("mfa enable wrong code", "/account/mfa/enable", {"code": "000000"}, page="/account/mfa", status=400)
        self.post("mfa recovery codes", "/account/mfa/enable", {"code": pyotp.TOTP(secret).now()},
                  page="/account/mfa")
        self.get("account mfa on", "/account")
        self.get("mfa on", "/account/mfa")
        self.post("mfa disable wrong", "/account/mfa/disable", {"password": CHANGED_PASSWORD, "code": "000000"},
                  page="/account/mfa", status=400)

        self.post("logged out", "/logout", {}, page="/account")
        self.get("mfa login expired", "/login/mfa")
        self.post("mfa login", "/login", {"email": ANA["email"], "password": CHANGED_PASSWORD})
        self.post("mfa login wrong code", "/login/mfa", {"code": "000000"})
        recovery = re.findall(r"<li><code>([0-9a-f]{8}-[0-9a-f]{8})</code></li>", self.pages["mfa recovery codes"])
        self.post(None, "/login/mfa", {"code": recovery[0]})
        self.post("mfa disabled", "/account/mfa/disable", {"password": CHANGED_PASSWORD, "code": recovery[1]},
                  page="/account/mfa")

        self.get("sharing", "/sharing")
        grant = {"third_party": THIRD_PARTY, "supply_ids": "30000001", "kinds": ["consumption", "bills"],
                 "from": "2025-01-01", "to": "2025-07-01"}
        self.post("sharing no name", "/sharing", {**grant, "third_party": " "}, status=400)
        self.post("sharing no kinds", "/sharing", {**grant, "kinds": []}, status=400)
        self.post("sharing too long", "/sharing", {**grant, "to": "2026-07-01"}, status=400)
        html = self.post("sharing granted", "/sharing", grant, status=201)
        revoke = re.search(r'action="(/sharing/[^"]+/revoke)"', html).group(1)
        self.post("sharing revoked", revoke, {}, page="/sharing")


def switch_language(client, lang: str) -> None:
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    response = client.post("/language", data={"lang": lang, "next": "/login", "csrf_token": token})
    assert response.status_code == 302


def customer_data(app) -> list[str]:
    """What the pages show of the customers' own data (never translated)."""
    read_model = app.extensions["read_model"]
    values = [ANA["email"], BRUNO["email"], NEW_EMAIL, THIRD_PARTY]
    for customer in read_model.customers():
        values.append(customer["name"])
        for supply in read_model.supplies_for_customer(customer["customer_id"]):
            values.extend([supply["address"], supply["comuna"]])
    return sorted((value for value in values if value), key=len, reverse=True)


def walk(app, data_dir: Path, lang: str | None) -> dict[str, str]:
    client = app.test_client()
    if lang is not None:
        switch_language(client, lang)
    steps = Walk(client, data_dir)
    steps.anonymous_pages()
    steps.account_pages(app)

    required = create_app({"TESTING": True, "AMI_DATA_DIR": data_dir, "SECRET_KEY": "test-secret-key",
                           "MFA_REQUIRED": True})
    try:
        bruno = required.test_client()
        if lang is not None:
            switch_language(bruno, lang)
        assert AuthActions(bruno).login(BRUNO, GOOD_PASSWORD).status_code == 302
        steps.client = bruno
        steps.get("mfa required", "/")
    finally:
        required.extensions["read_model"].close()
    return steps.pages


def test_every_account_page_is_spanish_by_default(app, data_dir):
    pages = walk(app, data_dir, None)
    assert set(pages) == set(EXPECTED)
    for name, html in pages.items():
        assert '<html lang="es-CL">' in html, name
        for spanish, english in EXPECTED[name]:
            assert spanish in unescape(html), (name, spanish)
            assert english not in unescape(html), (name, english)


def test_every_account_page_is_english_after_the_switch(app, data_dir):
    pages = walk(app, data_dir, "en")
    assert set(pages) == set(EXPECTED)
    data = customer_data(app)
    for name, html in pages.items():
        assert '<html lang="en">' in html, name
        for spanish, english in EXPECTED[name]:
            assert english in unescape(html), (name, english)
            assert spanish not in unescape(html), (name, spanish)
        assert spanish_left(html, data) == [], name


@pytest.mark.parametrize(("html", "left"), [
    ('<p>Log in</p><button lang="es-CL">Ver en español</button>', []),
    ("<p>Account: ana.perez@example.cl</p>", []),
    ("<p>Cuenta: someone</p>", ["Cuenta: someone"]),
    ('<a title="Volver">Back</a>', ["Volver"]),
    ("<h1>Verificación</h1>", ["Verificación"]),
    ("<p>Codes: <code>abc-de-la</code></p>", []),
])
def test_the_spanish_detector_sees_spanish_and_skips_data(html, left):
    assert spanish_left(html, ["ana.perez@example.cl"]) == left


def test_every_text_of_the_account_code_has_an_english_translation_in_the_compiled_catalog():
    with open(TRANSLATIONS / "messages.po", "rb") as handle:
        source = read_po(handle)
    with open(TRANSLATIONS / "messages.mo", "rb") as handle:
        compiled = read_mo(handle)
    account_texts = [message for message in source
                     if message.id and any(path in ACCOUNT_SOURCES for path, _ in message.locations)]
    assert len(account_texts) >= 100
    assert [message.id for message in account_texts if not message.string or message.fuzzy] == []
    # the .mo is the compiled .po: nothing added to the .po is missing from what the portal loads
    assert {message.id: message.string for message in source if message.id} == \
        {message.id: message.string for message in compiled if message.id}


def test_the_grants_api_answers_errors_in_spanish_whatever_the_page_language(client, auth):
    auth.login()
    token = csrf_token_of(client.get("/account").get_data(as_text=True))
    client.post("/language", data={"lang": "en", "next": "/account", "csrf_token": token})
    assert '<html lang="en">' in client.get("/account").get_data(as_text=True)
    response = client.post("/api/v1/grants", json={"third_party": "", "supply_ids": ["30000001"]},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 400
    assert response.get_json() == {"error": "Escribe el nombre del tercero (hasta 100 caracteres).",
                                   "field": "third_party"}
