//! Domain vocabulary: statuses and reasons as the API, the database and the events spell them.

use serde::{Deserialize, Serialize};

/// Seats per concert date, numbered `1..=SEATS_PER_DATE`.
pub const SEATS_PER_DATE: i32 = 50;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownValue(other.to_owned())),
                }
            }
        }
    };
}

/// A status or reason string that this version does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

string_enum!(
    /// A queue token's life: WAITING → ACTIVE → COMPLETED (paid) or EXPIRED; a waiter that stops
    /// polling becomes ABANDONED.
    TokenStatus {
        Waiting => "WAITING",
        Active => "ACTIVE",
        Completed => "COMPLETED",
        Expired => "EXPIRED",
        Abandoned => "ABANDONED",
    }
);

string_enum!(
    /// What a seat listing shows.
    SeatStatus {
        Available => "AVAILABLE",
        Held => "HELD",
        Sold => "SOLD",
    }
);

string_enum!(
    /// A reservation row's status.
    ReservationStatus {
        Held => "HELD",
        Confirmed => "CONFIRMED",
        Expired => "EXPIRED",
    }
);

string_enum!(
    /// Why a reservation request was rejected.
    RejectReason {
        SeatTaken => "SEAT_TAKEN",
        SeatNotFound => "SEAT_NOT_FOUND",
        SalesClosed => "SALES_CLOSED",
        HoldLimit => "HOLD_LIMIT",
    }
);

string_enum!(
    /// Why a payment failed.
    PaymentFailReason {
        InsufficientBalance => "INSUFFICIENT_BALANCE",
        HoldExpired => "HOLD_EXPIRED",
        ReservationNotFound => "RESERVATION_NOT_FOUND",
        NotOwner => "NOT_OWNER",
        AlreadyPaid => "ALREADY_PAID",
    }
);

string_enum!(
    /// The kind of an asynchronous request.
    RequestKind {
        Reservation => "RESERVATION",
        Payment => "PAYMENT",
    }
);
