//! The one client of the todo API: the backend's API tests, the end-to-end harness, the
//! compose test and the benchmark all speak to the service through it, so a change to the API
//! changes one file of test code.
//!
//! Requests return the raw [`reqwest::Response`] (tests assert on statuses and bodies) and
//! panic with the method and path when the request cannot be sent at all, as a test wants.
//! The flows that several callers share ([`TodoApi::user`], [`TodoApi::accepted_todo`],
//! [`TodoApi::all_titles`]) return errors with context instead, for the runners that are not
//! tests (the `stack` binary, the benchmark).

use anyhow::{ensure, Context as _};
use serde_json::{json, Value};

/// The password every test user gets: long enough for the backend's rules.
pub const PASSWORD: &str = "correct horse battery";

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub token: String,
}

/// The todo API at one base URL (a backend, or a gateway in front of backends).
#[derive(Debug, Clone)]
pub struct TodoApi {
    base: String,
    http: reqwest::Client,
}

impl TodoApi {
    /// `base` is `http://host:port` without a trailing slash.
    pub fn new(base: impl Into<String>) -> Self {
        Self::with_client(base, reqwest::Client::new())
    }

    /// With a client of the caller's (timeouts, pool settings).
    pub fn with_client(base: impl Into<String>, http: reqwest::Client) -> Self {
        Self {
            base: base.into(),
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// POST `body` as JSON to `path`, with a bearer token when given.
    pub async fn post_json(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// GET `path` without credentials.
    pub async fn get_anonymous(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET `path` as `user`.
    pub async fn get(&self, path: &str, user: &User) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn register(&self, username: &str, password: &str) -> reqwest::Response {
        let creds = json!({"username": username, "password": password});
        self.post_json("/auth/register", &creds, None).await
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        let creds = json!({"username": username, "password": password});
        self.post_json("/auth/login", &creds, None).await
    }

    /// POST /todos as `user` (202 and a job when accepted).
    pub async fn create_todo(&self, user: &User, title: &str) -> reqwest::Response {
        self.post_json("/todos", &json!({"title": title}), Some(&user.token))
            .await
    }

    pub async fn patch_todo(&self, user: &User, id: &str, body: &Value) -> reqwest::Response {
        self.http
            .patch(self.url(&format!("/todos/{id}")))
            .bearer_auth(&user.token)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PATCH /todos/{id}: {e}"))
    }

    pub async fn delete_todo(&self, user: &User, id: &str) -> reqwest::Response {
        self.http
            .delete(self.url(&format!("/todos/{id}")))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE /todos/{id}: {e}"))
    }

    /// Register `name` with [`PASSWORD`] and log in.
    pub async fn user(&self, name: &str) -> anyhow::Result<User> {
        let registered = self.register(name, PASSWORD).await;
        let status = registered.status();
        let body: Value = registered.json().await.unwrap_or_default();
        ensure!(status == 201, "register {name}: {status} {body}");
        let id = body["id"]
            .as_str()
            .context("no id in the register answer")?
            .to_owned();
        let login = self.login(name, PASSWORD).await;
        let status = login.status();
        let body: Value = login.json().await.unwrap_or_default();
        ensure!(status == 200, "login {name}: {status} {body}");
        let token = body["access_token"]
            .as_str()
            .context("no access_token in the login answer")?
            .to_owned();
        Ok(User { id, token })
    }

    /// POST /todos and insist on 202; the job's status path.
    pub async fn accepted_todo(&self, user: &User, title: &str) -> anyhow::Result<String> {
        let response = self.create_todo(user, title).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        ensure!(status == 202, "POST /todos {title:?}: {status} {body}");
        body["status_url"]
            .as_str()
            .map(str::to_owned)
            .context("no status_url in the 202 answer")
    }

    /// The status of the job at `status_path` (`queued`, `done`, ...), or `?` while it cannot
    /// be read (a replica going away mid-request, say).
    pub async fn job_status(&self, user: &User, status_path: &str) -> String {
        let Ok(response) = self
            .http
            .get(self.url(status_path))
            .bearer_auth(&user.token)
            .send()
            .await
        else {
            return "?".to_owned();
        };
        let job: Value = response.json().await.unwrap_or_default();
        job["status"].as_str().unwrap_or("?").to_owned()
    }

    /// Every todo title of `user`, following the cursor to the end.
    pub async fn all_titles(&self, user: &User) -> anyhow::Result<Vec<String>> {
        let mut titles = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/todos?limit=200&cursor={c}"),
                None => "/todos?limit=200".to_owned(),
            };
            let response = self.get(&path, user).await;
            ensure!(
                response.status() == 200,
                "GET {path}: {}",
                response.status()
            );
            let page: Value = response.json().await?;
            let items = page["items"].as_array().context("no items in the page")?;
            for item in items {
                titles.push(
                    item["title"]
                        .as_str()
                        .context("a todo without title")?
                        .to_owned(),
                );
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(titles),
            }
        }
    }
}
