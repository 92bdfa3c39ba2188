//! The pages: minijinja templates (HTML auto-escaped) compiled in, the stylesheet and the one small script, and the error pages.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("company_email.html", include_str!("../templates/company_email.html")),
    ("connect.html", include_str!("../templates/connect.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("sign_in.html", include_str!("../templates/sign_in.html")),
    ("events.html", include_str!("../templates/events.html")),
    ("inbox.html", include_str!("../templates/inbox.html")),
    ("outbox.html", include_str!("../templates/outbox.html")),
];

const STYLESHEET: &str = include_str!("../static/console.css");
const SCRIPT: &str = include_str!("../static/console.js");

/// The console's templates, parsed once.
pub(crate) struct Pages {
    env: Environment<'static>,
}

#[derive(Serialize)]
struct ErrorContext<'a> {
    page: &'a str,
    title: &'a str,
    detail: &'a str,
    status: u16,
}

impl Pages {
    /// The pages; `has_inbox` adds the Inbox tab to the navigation.
    pub(crate) fn new(has_inbox: bool) -> Pages {
        let mut env = Environment::new();
        env.add_global("has_inbox", has_inbox);
        for (name, source) in TEMPLATES {
            env.add_template(name, source).expect("the console's templates parse");
        }
        Pages { env }
    }

    /// Renders `template` with `context`; a template bug becomes a plain 500 page.
    pub(crate) fn render(&self, template: &str, context: impl Serialize) -> Response {
        match self.env.get_template(template).and_then(|t| t.render(context)) {
            Ok(html) => Html(html).into_response(),
            Err(error) => {
                tracing::error!(%error, template, "a console template failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "The page could not be rendered; see the console's log.")
                    .into_response()
            }
        }
    }

    /// A page saying what was refused and why.
    pub(crate) fn error_page(&self, status: StatusCode, title: &str, detail: &str) -> Response {
        let mut response =
            self.render("error.html", ErrorContext { page: "error", title, detail, status: status.as_u16() });
        *response.status_mut() = status;
        response
    }

    /// The page for a form whose CSRF token is not this session's.
    pub(crate) fn csrf_failed(&self) -> Response {
        self.error_page(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form's security token does not belong to this browser session (the console was restarted, or the form came from elsewhere). Nothing was changed: open the page again and repeat the step.",
        )
    }

    /// The access token form.
    pub(crate) fn sign_in(&self, csrf: &str, problem: Option<&str>) -> Response {
        #[derive(Serialize)]
        struct SignIn<'a> {
            page: &'a str,
            csrf: &'a str,
            problem: Option<&'a str>,
        }
        self.render("sign_in.html", SignIn { page: "sign-in", csrf, problem })
    }
}

/// Any path the console does not have.
pub(crate) async fn not_found(axum::extract::State(console): axum::extract::State<crate::Console>) -> Response {
    console.shared.pages.error_page(StatusCode::NOT_FOUND, "No such page", "The console has no page at this address.")
}

/// GET /static/console.css
pub(crate) async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], STYLESHEET)
        .into_response()
}

/// GET /static/console.js
pub(crate) async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], SCRIPT)
        .into_response()
}
