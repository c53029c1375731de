//! The REST API (docs/api.md): accounts, contacts, communities, uploads, history.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::error::{ClientError, Result};
use crate::types::*;

/// How long one HTTP exchange may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one Chorus server, with or without a session. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl Api {
    /// A client of the server at `base` (`http://host:port` or `https://...`), without a session.
    pub fn new(base: &str) -> Result<Self> {
        let bad = |why: &str| ClientError::BadUrl(base.to_owned(), why.to_owned());
        let mut url = Url::parse(base).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if url.host().is_none() {
            return Err(bad("no host"));
        }
        url.set_path("/");
        url.set_query(None);
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(ClientError::Http)?;
        Ok(Self {
            http,
            base: url,
            token: None,
        })
    }

    /// The same client with a session token (e.g. a remembered one).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The session token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The server's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `ws(s)://host:port/chat?token=...`, where the websocket lives.
    pub fn chat_url(&self) -> Result<Url> {
        let token = self.token.as_deref().ok_or(ClientError::NoSession)?;
        let mut url = self
            .base
            .join("chat")
            .map_err(|e| ClientError::BadUrl(self.base.to_string(), e.to_string()))?;
        let scheme = if self.base.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        url.set_scheme(scheme)
            .map_err(|_| ClientError::BadUrl(self.base.to_string(), "scheme".into()))?;
        url.query_pairs_mut().append_pair("token", token);
        Ok(url)
    }

    fn request(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::BadUrl(path.to_owned(), e.to_string()))?;
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        Ok(req)
    }

    fn authed(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        if self.token.is_none() {
            return Err(ClientError::NoSession);
        }
        self.request(method, path)
    }

    /// Turns a non-2xx answer into [`ClientError::Api`] with the server's code and message.
    async fn check(resp: Response) -> Result<Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => ClientError::Api {
                status: status.as_u16(),
                code: b.error.code,
                message: b.error.message,
            },
            Err(_) => ClientError::Api {
                status: status.as_u16(),
                code: "http_error".into(),
                message: format!("{status}: {}", text.chars().take(200).collect::<String>()),
            },
        })
    }

    async fn json<T: DeserializeOwned>(req: RequestBuilder) -> Result<T> {
        let resp = Self::check(req.send().await?).await?;
        let text = resp.text().await?;
        serde_json::from_str(&text).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn empty(req: RequestBuilder) -> Result<()> {
        Self::check(req.send().await?).await.map(drop)
    }

    /// `GET /healthz`: is the server up?
    pub async fn health(&self) -> Result<()> {
        Self::empty(self.request(Method::GET, "/healthz")?).await
    }

    /// `POST /api/users`: a new account (log in afterwards).
    pub async fn register(&self, reg: &Registration) -> Result<User> {
        Self::json(self.request(Method::POST, "/api/users")?.json(reg)).await
    }

    /// `POST /api/sessions`: logs in and keeps the token for later calls.
    pub async fn login(&mut self, name: &str, password: &str) -> Result<Session> {
        let body = json!({ "name": name, "password": password });
        let s: Session =
            Self::json(self.request(Method::POST, "/api/sessions")?.json(&body)).await?;
        self.token = Some(s.token.clone());
        Ok(s)
    }

    /// `DELETE /api/sessions`: revokes this session (its websockets close with 4401).
    pub async fn logout(&mut self) -> Result<()> {
        Self::empty(self.authed(Method::DELETE, "/api/sessions")?).await?;
        self.token = None;
        Ok(())
    }

    /// `GET /api/users/me`.
    pub async fn me(&self) -> Result<User> {
        Self::json(self.authed(Method::GET, "/api/users/me")?).await
    }

    /// `PATCH /api/users/me`.
    pub async fn update_me(&self, update: &ProfileUpdate) -> Result<User> {
        Self::json(self.authed(Method::PATCH, "/api/users/me")?.json(update)).await
    }

    /// `DELETE /api/users/me`: removes the account for good.
    pub async fn delete_me(&mut self) -> Result<()> {
        Self::empty(self.authed(Method::DELETE, "/api/users/me")?).await?;
        self.token = None;
        Ok(())
    }

    /// `GET /api/users?q=`: users whose name contains `q`.
    pub async fn search_users(&self, q: &str) -> Result<Vec<User>> {
        Self::json(self.authed(Method::GET, "/api/users")?.query(&[("q", q)])).await
    }

    /// `GET /api/users/{id}`.
    pub async fn user(&self, id: UserId) -> Result<User> {
        Self::json(self.authed(Method::GET, &format!("/api/users/{id}"))?).await
    }

    /// `GET /api/contacts`: my contacts with their presence.
    pub async fn contacts(&self) -> Result<Vec<User>> {
        Self::json(self.authed(Method::GET, "/api/contacts")?).await
    }

    /// `POST /api/contacts`: befriends `user_id` (both ways at once).
    pub async fn add_contact(&self, user_id: UserId) -> Result<User> {
        let body = json!({ "user_id": user_id });
        Self::json(self.authed(Method::POST, "/api/contacts")?.json(&body)).await
    }

    /// `DELETE /api/contacts/{id}`.
    pub async fn remove_contact(&self, user_id: UserId) -> Result<()> {
        Self::empty(self.authed(Method::DELETE, &format!("/api/contacts/{user_id}"))?).await
    }

    /// `POST /api/communities`: a new community with me as owner and first member.
    pub async fn create_community(&self, c: &NewCommunity) -> Result<Community> {
        Self::json(self.authed(Method::POST, "/api/communities")?.json(c)).await
    }

    /// `GET /api/communities`: the communities I am in.
    pub async fn communities(&self) -> Result<Vec<Community>> {
        Self::json(self.authed(Method::GET, "/api/communities")?).await
    }

    /// `GET /api/communities/search?q=`.
    pub async fn search_communities(&self, q: &str) -> Result<Vec<Community>> {
        Self::json(
            self.authed(Method::GET, "/api/communities/search")?
                .query(&[("q", q)]),
        )
        .await
    }

    /// `POST /api/communities/{id}/members`: joins.
    pub async fn join_community(&self, id: CommunityId) -> Result<Community> {
        Self::json(self.authed(Method::POST, &format!("/api/communities/{id}/members"))?).await
    }

    /// `DELETE /api/communities/{id}/members/me`: leaves.
    pub async fn leave_community(&self, id: CommunityId) -> Result<()> {
        Self::empty(self.authed(Method::DELETE, &format!("/api/communities/{id}/members/me"))?)
            .await
    }

    /// `GET /api/communities/{id}/members`.
    pub async fn members(&self, id: CommunityId) -> Result<Vec<User>> {
        Self::json(self.authed(Method::GET, &format!("/api/communities/{id}/members"))?).await
    }

    /// `POST /api/attachments`: uploads an image (png, jpeg, gif, webp, judged by its bytes).
    pub async fn upload(&self, file_name: &str, bytes: Vec<u8>) -> Result<Attachment> {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        Self::json(
            self.authed(Method::POST, "/api/attachments")?
                .multipart(form),
        )
        .await
    }

    /// `GET /api/conversations/{c}/messages`: one page of history, oldest first.
    pub async fn history(
        &self,
        conversation: ConversationId,
        page: Page,
        limit: u32,
    ) -> Result<Vec<ChatMessage>> {
        let mut q = vec![("limit", limit.to_string())];
        match page {
            Page::Latest => {}
            Page::Before(s) => q.push(("before", s.to_string())),
            Page::After(s) => q.push(("after", s.to_string())),
        }
        let path = format!("/api/conversations/{conversation}/messages");
        Self::json(self.authed(Method::GET, &path)?.query(&q)).await
    }

    /// `GET /api/conversations/{c}/reads`: every participant's read cursor.
    pub async fn reads(&self, conversation: ConversationId) -> Result<Vec<ReadCursor>> {
        let path = format!("/api/conversations/{conversation}/reads");
        Self::json(self.authed(Method::GET, &path)?).await
    }
}
