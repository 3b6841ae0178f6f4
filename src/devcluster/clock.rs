//! Timestamps as the API server writes them (RFC 3339, seconds, UTC).

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
