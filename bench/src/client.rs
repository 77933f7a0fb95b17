//! A small client of Seatline's public HTTP API, as the load generator uses it.

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    admin_token: String,
}

/// An HTTP answer: status and JSON body (Null when there is none).
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Api {
    pub fn new(base: &str, admin_token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            admin_token: admin_token.to_owned(),
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
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
                    .post(format!("{}/admin/concerts", self.base))
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
                    .post(format!("{}/admin/concerts/{concert}/dates", self.base))
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
                .post(format!("{}/client/token", self.base))
                .json(&json!({"userId": user})),
        )
        .await
    }

    pub async fn token_status(&self, token: &str) -> anyhow::Result<Answer> {
        self.send(
            self.http
                .get(format!("{}/client/token", self.base))
                .bearer_auth(token),
        )
        .await
    }

    pub async fn charge(&self, user: Uuid, token: &str, amount: i64) -> anyhow::Result<Answer> {
        self.send(
            self.http
                .patch(format!("{}/user/{user}/charge", self.base))
                .bearer_auth(token)
                .json(&json!({"amount": amount})),
        )
        .await
    }

    pub async fn reserve(&self, token: &str, date: i64, seat: i32) -> anyhow::Result<Answer> {
        self.send(
            self.http
                .post(format!("{}/reservation", self.base))
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
                .post(format!("{}/payment/{payment}", self.base))
                .bearer_auth(token)
                .json(&json!({"reservationId": reservation})),
        )
        .await
    }
}
