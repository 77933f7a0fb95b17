//! A small client of Seatline's public HTTP API, as the load generator uses it.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use uuid::Uuid;

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// Parsed once, not per request: parsing every request's URL (host included) was about 6%
    /// of the load generator's `perf` samples in the rush.
    base: Url,
    admin_token: String,
    /// Requests in flight at once, at most, when bounded: HTTP/1.1 carries one request per
    /// connection at a time, so this bounds the client's open connections too.
    in_flight: Option<Arc<Semaphore>>,
}

/// An HTTP answer: status and JSON body (Null when there is none).
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Api {
    /// `max_in_flight` 0 leaves the requests in flight (and so the connections) unbounded.
    pub fn new(base: &str, admin_token: &str, max_in_flight: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()?;
        let base = Url::parse(base)?;
        anyhow::ensure!(
            !base.cannot_be_a_base(),
            "the API's URL must be http(s)://host[:port][/path]"
        );
        Ok(Self {
            http,
            base,
            admin_token: admin_token.to_owned(),
            in_flight: (max_in_flight > 0).then(|| Arc::new(Semaphore::new(max_in_flight))),
        })
    }

    /// The base URL with `path` (which starts with a slash) after its own path.
    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        url
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
        // A request waiting here is late, and its latency (counted from when it was due) shows it.
        let _slot = match &self.in_flight {
            Some(slots) => Some(slots.acquire().await?),
            None => None,
        };
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    pub async fn create_concert(&self, title: &str) -> anyhow::Result<i64> {
        let a = self
            .send(
                self.http
                    .post(self.url("/admin/concerts"))
                    .bearer_auth(&self.admin_token)
                    .json(&json!({"title": title, "venue": "Bench Arena"})),
            )
            .await?;
        anyhow::ensure!(
            a.status == 201,
            "creating a concert: {} {}",
            a.status,
            a.body
        );
        Ok(a.body["id"].as_i64().unwrap_or_default())
    }

    pub async fn create_date(&self, concert: i64, day: i64, price: i64) -> anyhow::Result<i64> {
        let starts_at = chrono::Utc::now() + chrono::Duration::days(30 + day);
        let a = self
            .send(
                self.http
                    .post(self.url(&format!("/admin/concerts/{concert}/dates")))
                    .bearer_auth(&self.admin_token)
                    .json(&json!({"startsAt": starts_at, "defaultPrice": price})),
            )
            .await?;
        anyhow::ensure!(a.status == 201, "creating a date: {} {}", a.status, a.body);
        Ok(a.body["id"].as_i64().unwrap_or_default())
    }

    pub async fn issue_token(&self, user: Uuid) -> anyhow::Result<Answer> {
        self.send(
            self.http
                .post(self.url("/client/token"))
                .json(&json!({"userId": user})),
        )
        .await
    }

    pub async fn token_status(&self, token: &str) -> anyhow::Result<Answer> {
        self.send(self.http.get(self.url("/client/token")).bearer_auth(token))
            .await
    }

    pub async fn charge(&self, user: Uuid, token: &str, amount: i64) -> anyhow::Result<Answer> {
        self.send(
            self.http
                .patch(self.url(&format!("/user/{user}/charge")))
                .bearer_auth(token)
                .json(&json!({"amount": amount})),
        )
        .await
    }

    pub async fn reserve(&self, token: &str, date: i64, seat: i32) -> anyhow::Result<Answer> {
        self.send(
            self.http
                .post(self.url("/reservation"))
                .bearer_auth(token)
                .json(&json!({"concertDateId": date, "seatNo": seat})),
        )
        .await
    }

    pub async fn pay(
        &self,
        token: &str,
        payment: Uuid,
        reservation: Uuid,
    ) -> anyhow::Result<Answer> {
        self.send(
            self.http
                .post(self.url(&format!("/payment/{payment}")))
                .bearer_auth(token)
                .json(&json!({"reservationId": reservation})),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::Api;
    use std::time::Duration;

    #[test]
    fn request_paths_follow_the_base_urls_own_path() {
        let bare = Api::new("http://127.0.0.1:8080", "admin", 0).expect("a valid URL");
        assert_eq!(
            bare.url("/reservation").as_str(),
            "http://127.0.0.1:8080/reservation"
        );
        let prefixed =
            Api::new("http://127.0.0.1:8080/seatline/", "admin", 0).expect("a valid URL");
        assert_eq!(
            prefixed.url("/client/token").as_str(),
            "http://127.0.0.1:8080/seatline/client/token"
        );
    }

    #[test]
    fn a_base_that_is_not_a_url_is_refused() {
        assert!(Api::new("127.0.0.1:8080", "admin", 0).is_err());
    }

    /// With one slot, a second request is not sent (no second connection is opened) until the
    /// first is answered.
    #[tokio::test]
    async fn a_bounded_client_waits_for_a_free_slot_before_connecting() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = Api::new(
            &format!("http://{}", listener.local_addr().unwrap()),
            "admin",
            1,
        )
        .expect("a valid URL");
        let (first, second) = (api.clone(), api.clone());
        let calls =
            tokio::spawn(
                async move { tokio::join!(first.token_status("a"), second.token_status("b")) },
            );

        let (mut connection, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 1024];
        let _ = connection.read(&mut request).await.unwrap();
        // While the first waits for its answer, the second must not connect.
        let early = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(
            early.is_err(),
            "a second connection while the only slot was taken"
        );
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
        connection.write_all(answer).await.unwrap();
        drop(connection);

        let (mut connection, _) = listener.accept().await.unwrap();
        let _ = connection.read(&mut request).await.unwrap();
        connection.write_all(answer).await.unwrap();
        drop(connection);
        let (a, b) = calls.await.unwrap();
        assert_eq!((a.unwrap().status, b.unwrap().status), (200, 200));
    }
}
