//! A small client of Seatline's public HTTP API, as the load generator uses it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{Semaphore, SemaphorePermit};
use uuid::Uuid;

/// How long any request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle connections kept open per client.
const IDLE_CONNECTIONS: usize = 512;

/// hyper's client, for the rush's reservations. reqwest parses every response's URL again
/// (its redirect support keeps the final URL), so a request to a fixed URL still cost a URL
/// parse with its host's IDNA processing: `url` and `idna` were about 4% of the load
/// generator's `perf` samples in the rush, and reqwest's own layers another 2.6%.
type Hyper = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    hyper: Hyper,
    /// `POST /reservation` under the base URL, parsed once.
    reservation_uri: http::Uri,
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

/// The answer to a reservation: its status, and the request id of a 202.
#[derive(Debug, PartialEq)]
pub struct Submission {
    pub status: u16,
    pub request_id: Option<Uuid>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    request_id: Uuid,
}

/// `base` with `path` (which starts with a slash) after its own path.
fn under(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url
}

impl Api {
    /// `max_in_flight` 0 leaves the requests in flight (and so the connections) unbounded.
    pub fn new(base: &str, admin_token: &str, max_in_flight: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(IDLE_CONNECTIONS)
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .build()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_CONNECTIONS)
            .build(connector);
        let base = Url::parse(base)?;
        anyhow::ensure!(
            !base.cannot_be_a_base(),
            "the API's URL must be http(s)://host[:port][/path]"
        );
        Ok(Self {
            http,
            hyper,
            reservation_uri: under(&base, "/reservation").as_str().parse()?,
            base,
            admin_token: admin_token.to_owned(),
            in_flight: (max_in_flight > 0).then(|| Arc::new(Semaphore::new(max_in_flight))),
        })
    }

    fn url(&self, path: &str) -> Url {
        under(&self.base, path)
    }

    /// A slot for one request in flight, when they are bounded. A request waiting here is late,
    /// and its latency (counted from when it was due) shows it.
    async fn slot(&self) -> anyhow::Result<Option<SemaphorePermit<'_>>> {
        Ok(match &self.in_flight {
            Some(slots) => Some(slots.acquire().await?),
            None => None,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
        let _slot = self.slot().await?;
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

    pub async fn reserve(&self, token: &str, date: i64, seat: i32) -> anyhow::Result<Submission> {
        let request = http::Request::post(self.reservation_uri.clone())
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(format!(
                r#"{{"concertDateId":{date},"seatNo":{seat}}}"#
            ))))?;
        let _slot = self.slot().await?;
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let response = self.hyper.request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        })
        .await??;
        let request_id = if status == 202 {
            Some(serde_json::from_slice::<Accepted>(&body)?.request_id)
        } else {
            None
        };
        Ok(Submission { status, request_id })
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
    use super::{Api, Submission};
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

    /// A reservation is a POST of the seat to the base URL's `/reservation`, with the token as
    /// a bearer; a 202's request id is read from its body, and any other answer has none.
    #[tokio::test]
    async fn a_reservation_posts_the_seat_and_reads_the_request_id_of_a_202() {
        use seatline_shared::testing::read_http_message;
        use tokio::io::AsyncWriteExt;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/seatline", listener.local_addr().unwrap());
        let api = Api::new(&base, "admin", 0).expect("a valid URL");
        let id = uuid::Uuid::new_v4();
        let body = format!(r#"{{"requestId":"{id}","status":"PENDING"}}"#);
        let answers = [
            format!(
                "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
            "HTTP/1.1 409 Conflict\r\ncontent-length: 2\r\n\r\n{}".to_owned(),
        ];
        let server = tokio::spawn(async move {
            let (mut connection, _) = listener.accept().await.unwrap();
            let mut requests = Vec::new();
            for answer in answers {
                let (head, body) = read_http_message(&mut connection).await;
                requests.push(format!("{head}\r\n\r\n{}", String::from_utf8_lossy(&body)));
                connection.write_all(answer.as_bytes()).await.unwrap();
            }
            requests
        });

        let accepted = api.reserve("t0k3n", 7, 42).await.unwrap();
        let refused = api.reserve("t0k3n", 7, 42).await.unwrap();
        assert_eq!(
            accepted,
            Submission {
                status: 202,
                request_id: Some(id)
            }
        );
        assert_eq!(
            refused,
            Submission {
                status: 409,
                request_id: None
            }
        );
        let request = server.await.unwrap().remove(0).to_lowercase();
        assert!(
            request.starts_with("post /seatline/reservation http/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("authorization: bearer t0k3n\r\n"),
            "{request}"
        );
        assert!(
            request.contains("content-type: application/json\r\n"),
            "{request}"
        );
        assert!(
            request.ends_with(r#"{"concertdateid":7,"seatno":42}"#),
            "{request}"
        );
    }
}
