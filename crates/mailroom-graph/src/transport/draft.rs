//! Messages above one Graph request: a draft from the MIME without its file attachments, each file attached (one POST below 3 MB, an upload session from 3 MB up), then `send`; a failure before `send` deletes the draft.

use base64::Engine as _;
use mailroom_core::{OutgoingMessage, Secret, SendError, SendReceipt, ServerReply, Transcript};
use mailroom_http::{Header, Reply, Request};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Deserialize;

use super::{GraphTransport, MAX_REQUEST_BYTES, bearer};
use crate::error::{GraphError, Step};
use crate::split::{FilePart, split_files};

/// Files from this size up are attached through an upload session; smaller ones with one
/// POST (Graph: "if the file size is under 3 MB, do a single POST").
pub const UPLOAD_SESSION_FROM: usize = 3_000_000;

/// Bytes per upload-session PUT: Graph wants multiples of 320 KiB and at most about 4 MB.
pub const UPLOAD_CHUNK_BYTES: usize = 10 * 327_680;

/// The longest draft id accepted from Graph (real ones are about 150 characters).
const MAX_ID_CHARS: usize = 1024;

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadSession {
    upload_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadProgress {
    #[serde(default)]
    next_expected_ranges: Vec<String>,
}

impl GraphTransport {
    /// Sends `mime` (the message with its Bcc field) as a draft plus uploads.
    pub(super) async fn send_as_draft(&self, message: &OutgoingMessage, mime: &[u8]) -> Result<SendReceipt, SendError> {
        let limit = MAX_REQUEST_BYTES / 4 * 3;
        let too_large = |why| GraphError::TooLarge { size: message.len(), limit, why }.classify(&self.context);
        let Some(split) = split_files(mime) else {
            return Err(too_large("it has no file attachments that could be uploaded separately"));
        };
        let remainder = base64::engine::general_purpose::STANDARD.encode(&split.remainder).into_bytes();
        if remainder.len() > MAX_REQUEST_BYTES {
            return Err(too_large("its text and other non-file parts alone are larger than that"));
        }
        tracing::debug!(files = split.files.len(), "message above one Graph request: draft plus attachment uploads");
        let mut transcript = Transcript::new();
        let mut refreshed = false;
        let draft = match self.create_draft(remainder, &mut refreshed, &mut transcript).await {
            Ok(draft) => draft,
            Err(error) => return Err(error.with_transcript(transcript)),
        };
        for file in &split.files {
            if let Err(error) = self.attach(&draft, file, &mut refreshed, &mut transcript).await {
                self.discard(&draft, &mut transcript).await;
                return Err(error.with_transcript(transcript));
            }
        }
        let send_url = child(&draft, &["send"]);
        let send = |token: &Secret| {
            Request::post(&send_url).header(bearer(token)).reply_timeout(self.send_deadline()).delivers(true)
        };
        let reply = match self.authorized(send, &mut refreshed, &mut transcript).await {
            Ok(reply) => reply,
            Err(Failed::Token(error)) => {
                self.discard(&draft, &mut transcript).await;
                return Err(error.with_transcript(transcript));
            }
            Err(Failed::Http(error)) => {
                let not_sent = error.failure().not_sent();
                let error = self.classify_http(error, Step::SendDraft);
                if not_sent {
                    self.discard(&draft, &mut transcript).await;
                }
                return Err(error.with_transcript(transcript));
            }
        };
        if !reply.is_success() {
            let error = self.classify_reply(&reply, Step::SendDraft);
            // A refusal leaves the draft unsent; after a 5xx it may have gone out and moved to
            // Sent Items, so it is left alone.
            if reply.status < 500 || reply.status == 503 {
                self.discard(&draft, &mut transcript).await;
            }
            return Err(error.with_transcript(transcript));
        }
        Ok(SendReceipt {
            message_id: message.message_id().to_owned(),
            service_id: reply.header("request-id").map(str::to_owned),
            server_reply: Some(ServerReply::http(reply.status, None, reply.reason.clone())),
        })
    }

    /// Sends the request `build` makes with a token; on a 401 (not acted on) once more with a
    /// fresh token.
    async fn authorized<'u>(
        &self,
        build: impl Fn(&Secret) -> Request<'u>,
        refreshed: &mut bool,
        transcript: &mut Transcript,
    ) -> Result<Reply, Failed> {
        loop {
            let token = self.tokens.token().await.map_err(Failed::Token)?;
            let reply = self.http.send(build(&token), transcript).await.map_err(Failed::Http)?;
            if reply.status == 401 && !*refreshed {
                *refreshed = true;
                self.tokens.invalidate(&token).await;
                tracing::debug!("Graph refused the access token; refreshing once");
                continue;
            }
            return Ok(reply);
        }
    }

    /// [`Self::authorized`] for a step before `send`: every failure is classified as not sent.
    async fn step<'u>(
        &self,
        build: impl Fn(&Secret) -> Request<'u>,
        step: Step,
        refreshed: &mut bool,
        transcript: &mut Transcript,
    ) -> Result<Reply, SendError> {
        let reply = match self.authorized(build, refreshed, transcript).await {
            Ok(reply) => reply,
            Err(Failed::Token(error)) => return Err(error),
            Err(Failed::Http(error)) => return Err(self.classify_http(error, step)),
        };
        if !reply.is_success() {
            return Err(self.classify_reply(&reply, step));
        }
        Ok(reply)
    }

    /// `POST …/messages` with the base64 MIME: the draft's URL.
    async fn create_draft(
        &self,
        body: Vec<u8>,
        refreshed: &mut bool,
        transcript: &mut Transcript,
    ) -> Result<url::Url, SendError> {
        let build = |token: &Secret| {
            Request::post(&self.messages_url)
                .header(bearer(token))
                .header(Header::new(CONTENT_TYPE, HeaderValue::from_static("text/plain")))
                .body(body.clone(), "the message without its file attachments, base64 (MIME form)")
                .reply_timeout(self.send_deadline())
        };
        let reply = self.step(build, Step::CreateDraft, refreshed, transcript).await?;
        let id = serde_json::from_slice::<Created>(&reply.body)
            .ok()
            .map(|created| created.id)
            .filter(|id| !id.is_empty() && id.len() <= MAX_ID_CHARS && !id.chars().any(char::is_control))
            .ok_or_else(|| self.unexpected(Step::CreateDraft, "the created draft has no usable \"id\""))?;
        Ok(child(&self.messages_url, &[&id]))
    }

    /// Attaches one file to the draft: one POST below [`UPLOAD_SESSION_FROM`], else an upload session.
    async fn attach(
        &self,
        draft: &url::Url,
        file: &FilePart,
        refreshed: &mut bool,
        transcript: &mut Transcript,
    ) -> Result<(), SendError> {
        if file.bytes.len() < UPLOAD_SESSION_FROM {
            let mut attachment = file_description(file);
            attachment["@odata.type"] = "#microsoft.graph.fileAttachment".into();
            attachment["contentBytes"] = base64::engine::general_purpose::STANDARD.encode(&file.bytes).into();
            let body = attachment.to_string().into_bytes();
            if body.len() <= MAX_REQUEST_BYTES {
                let url = child(draft, &["attachments"]);
                let what = format!("the attachment \"{}\" ({} bytes), JSON", file.name, file.bytes.len());
                let build = |token: &Secret| {
                    Request::post(&url)
                        .header(bearer(token))
                        .header(json_content())
                        .body(body.clone(), what.clone())
                        .reply_timeout(self.send_deadline())
                };
                self.step(build, Step::Upload, refreshed, transcript).await?;
                return Ok(());
            }
        }
        self.upload(draft, file, refreshed, transcript).await
    }

    /// `createUploadSession`, then the file in [`UPLOAD_CHUNK_BYTES`] ranges to the session's
    /// pre-authenticated URL (without `Authorization`: Graph refuses it there with a 401).
    async fn upload(
        &self,
        draft: &url::Url,
        file: &FilePart,
        refreshed: &mut bool,
        transcript: &mut Transcript,
    ) -> Result<(), SendError> {
        let total = file.bytes.len();
        let mut item = file_description(file);
        item["attachmentType"] = "file".into();
        item["size"] = total.into();
        let body = serde_json::json!({ "AttachmentItem": item }).to_string().into_bytes();
        let url = child(draft, &["attachments", "createUploadSession"]);
        let build = |token: &Secret| {
            Request::post(&url)
                .header(bearer(token))
                .header(json_content())
                .body(body.clone(), "the upload session's attachment item (JSON)")
                .reply_timeout(self.send_deadline())
        };
        let reply = self.step(build, Step::Upload, refreshed, transcript).await?;
        let upload_url = serde_json::from_slice::<UploadSession>(&reply.body)
            .ok()
            .and_then(|session| url::Url::parse(&session.upload_url).ok())
            .filter(|url| matches!(url.scheme(), "https" | "http"))
            .ok_or_else(|| self.unexpected(Step::Upload, "the upload session has no usable \"uploadUrl\""))?;
        let secrets = url_secrets(&upload_url);
        let mut offset = 0;
        while offset < total {
            let end = offset.saturating_add(UPLOAD_CHUNK_BYTES).min(total);
            let range = format!("bytes {offset}-{}/{total}", end - 1);
            let mut request = Request::new(reqwest::Method::PUT, &upload_url)
                .header(Header::new(HeaderName::from_static("content-range"), header_value(&range)))
                .header(Header::new(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")))
                .body(file.bytes[offset..end].to_vec(), format!("\"{}\" {range}", file.name))
                .reply_timeout(self.send_deadline());
            for secret in &secrets {
                request = request.secret(secret.clone());
            }
            let reply = match self.http.send(request, transcript).await {
                Ok(reply) => reply,
                Err(error) => return Err(self.classify_http(error, Step::Upload)),
            };
            if !reply.is_success() {
                return Err(self.classify_reply(&reply, Step::Upload));
            }
            offset = end;
            if offset < total && next_expected(&reply.body).is_some_and(|next| next != offset) {
                // Graph lost or skipped a range: resending by its count is not worth the risk of
                // a corrupted file, and nothing was sent yet.
                return Err(self.unexpected(Step::Upload, "the upload session expects another range than the next one"));
            }
        }
        Ok(())
    }

    /// Best effort: deletes a draft that will not be sent, with its own short deadline. A
    /// failure is logged and recorded, not returned: the send already failed for its own reason.
    async fn discard(&self, draft: &url::Url, transcript: &mut Transcript) {
        let token = match self.tokens.token().await {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(error = %error.detail(), "could not delete the unsent Graph draft: no token");
                return;
            }
        };
        let request = Request::new(reqwest::Method::DELETE, draft).header(bearer(&token)).reply_timeout(self.timeout);
        match self.http.send(request, transcript).await {
            Ok(reply) if reply.is_success() => transcript.note("the unsent draft was deleted"),
            Ok(reply) => {
                tracing::warn!(status = reply.status, "could not delete the unsent Graph draft");
                transcript.note("the unsent draft could not be deleted: it stays in the mailbox's Drafts");
            }
            Err(error) => {
                tracing::warn!(%error, "could not delete the unsent Graph draft");
                transcript.note("the unsent draft could not be deleted: it stays in the mailbox's Drafts");
            }
        }
    }

    fn unexpected(&self, step: Step, detail: &str) -> SendError {
        GraphError::Unexpected { step, detail: detail.to_owned() }.classify(&self.context)
    }
}

/// Why [`GraphTransport::authorized`] got no reply.
enum Failed {
    /// No token (already classified).
    Token(SendError),
    /// The request failed.
    Http(mailroom_http::HttpError),
}

/// `base` with `segments` appended, each percent-encoded as one path segment.
fn child(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

fn json_content() -> Header {
    Header::new(CONTENT_TYPE, HeaderValue::from_static("application/json"))
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The secrets of a pre-authenticated URL: its whole query and each `authtoken` in it (as
/// written and decoded), scrubbed from everything kept of the exchange.
fn url_secrets(url: &url::Url) -> Vec<String> {
    let mut secrets: Vec<String> = url.query().map(str::to_owned).into_iter().collect();
    for pair in url.query().unwrap_or_default().split('&') {
        if let Some((name, value)) = pair.split_once('=')
            && name.eq_ignore_ascii_case("authtoken")
        {
            secrets.push(value.to_owned());
        }
    }
    secrets.extend(
        url.query_pairs()
            .filter(|(name, _)| name.eq_ignore_ascii_case("authtoken"))
            .map(|(_, value)| value.into_owned()),
    );
    secrets
}

/// The start of the session's `nextExpectedRanges` (`"3276800"` or `"3276800-"`).
fn next_expected(body: &[u8]) -> Option<usize> {
    let progress: UploadProgress = serde_json::from_slice(body).ok()?;
    let first = progress.next_expected_ranges.first()?;
    first.split('-').next()?.trim().parse().ok()
}

/// What a `fileAttachment` and an upload session's `AttachmentItem` both say of a file: its
/// name, content type, inline flag and Content-ID.
fn file_description(file: &FilePart) -> serde_json::Value {
    let mut description = serde_json::json!({
        "name": file.name,
        "contentType": file.content_type,
        "isInline": file.inline,
    });
    if let Some(id) = &file.content_id {
        description["contentId"] = id.clone().into();
    }
    description
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_url_query_and_its_authtoken_are_secrets() {
        let url = url::Url::parse(
            "https://outlook.office.com/api/v2.0/Users('a')/AttachmentSessions('b')?authtoken=eyJh%2Bbc&x=1",
        )
        .unwrap();
        let secrets = url_secrets(&url);
        assert!(secrets.contains(&"eyJh%2Bbc".to_owned()) && secrets.contains(&"eyJh+bc".to_owned()), "{secrets:?}");
        assert!(secrets.contains(&"authtoken=eyJh%2Bbc&x=1".to_owned()));
    }

    #[test]
    fn next_expected_reads_graphs_single_start() {
        assert_eq!(next_expected(br#"{"nextExpectedRanges":["3276800"]}"#), Some(3_276_800));
        assert_eq!(next_expected(br#"{"nextExpectedRanges":["3276800-"]}"#), Some(3_276_800));
        assert_eq!(next_expected(br#"{"nextExpectedRanges":["99999999999999999999999"]}"#), None);
        assert_eq!(next_expected(b"garbage"), None);
    }

    #[test]
    fn chunks_are_a_multiple_of_320_kib() {
        assert_eq!(UPLOAD_CHUNK_BYTES % 327_680, 0);
        const { assert!(UPLOAD_CHUNK_BYTES <= 4 * 1024 * 1024) };
    }

    #[test]
    fn a_draft_id_is_one_encoded_path_segment() {
        let base = url::Url::parse("https://graph.microsoft.com/v1.0/me/messages").unwrap();
        let url = child(&child(&base, &["AAMk/x+y="]), &["attachments", "createUploadSession"]);
        assert_eq!(
            url.as_str(),
            "https://graph.microsoft.com/v1.0/me/messages/AAMk%2Fx+y=/attachments/createUploadSession"
        );
    }
}
