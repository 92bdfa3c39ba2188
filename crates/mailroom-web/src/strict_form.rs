//! `StrictForm`: a form body that is exactly what the page sends (urlencoded, within the size limit, no unknown field), or a clear error page.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::Console;

/// A form posted by one of the console's pages.
pub(crate) struct StrictForm<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<Console> for StrictForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Console) -> Result<Self, Self::Rejection> {
        let refuse = |status: StatusCode, title: &str, detail: String| {
            console.shared.pages.error_page(status, title, &detail).into_response()
        };
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "This request is not a form from this page",
                format!(
                    "The console takes forms sent as application/x-www-form-urlencoded; this request was sent as \"{}\". Nothing was changed.",
                    content_type.chars().filter(|c| !c.is_control()).take(80).collect::<String>()
                ),
            ));
        }
        let body = match Bytes::from_request(request, console).await {
            Ok(body) => body,
            Err(rejection) => {
                let status = rejection.status();
                let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    format!(
                        "The form is larger than the console accepts ({} KiB). Nothing was changed.",
                        crate::MAX_BODY_BYTES / 1024
                    )
                } else {
                    "The form could not be read. Nothing was changed.".to_owned()
                };
                return Err(refuse(status, "The form was refused", detail));
            }
        };
        match serde_urlencoded::from_bytes::<T>(&body) {
            Ok(value) => Ok(StrictForm(value)),
            // serde's messages name fields, never their values.
            Err(error) => Err(refuse(
                StatusCode::BAD_REQUEST,
                "The form does not match this page",
                format!("{error}. Reload the page and try again; nothing was changed."),
            )),
        }
    }
}
