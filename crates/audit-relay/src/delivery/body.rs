//! Request bodies the relay writes itself, sent by the AWS SDKs in place of their own.
//!
//! The SDKs serialize a JSON request by escaping each string one byte at a time into a buffer that
//! grows; for the event texts a call carries (`eventData` of `PutAuditEvents`, `message` of
//! `PutLogEvents`) that was the largest single cost of delivery in a profile (13 % of the relay's
//! workers). The relay writes the same JSON with serde_json, which copies runs of plain bytes, and
//! gives it to the SDK through [`WrittenBody`]. Everything else stays the SDK's: the URI, query and
//! headers, SigV4, retries and parsing the answer. Each destination's tests compare, byte for byte,
//! the body sent this way with the one the SDK's own serializer writes for the same input.

use aws_sdk_cloudtraildata::config::{
    ConfigBag, Intercept, RuntimeComponents, interceptors::BeforeTransmitInterceptorContextMut,
};
use aws_smithy_types::body::SdkBody;

/// Puts a body the relay wrote in place of the one the SDK serialized from an input without the
/// events, once, before the SDK's retry loop, so that every attempt sends and signs it. Should the
/// hook ever not run, the service refuses a request without events as a whole (a required member
/// is missing), and the events stay pending.
#[derive(Debug)]
pub(super) struct WrittenBody(pub(super) bytes::Bytes);

impl Intercept for WrittenBody {
    fn name(&self) -> &'static str {
        "WrittenBody"
    }

    fn modify_before_retry_loop(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request_mut();
        *request.body_mut() = SdkBody::from(self.0.clone());
        request.headers_mut().insert("content-length", self.0.len().to_string());
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod testing {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records the body and its declared length as they stand before the retry loop, then stops
    /// the call there (a test double: nothing is sent anywhere).
    #[derive(Debug, Default, Clone)]
    pub(in crate::delivery) struct Capture(Arc<Mutex<Option<Captured>>>);

    /// A request's body and its `Content-Length`.
    type Captured = (Vec<u8>, String);

    impl Capture {
        /// The body and length captured, once.
        pub(in crate::delivery) fn take(&self) -> Option<Captured> {
            self.0.lock().unwrap().take()
        }
    }

    impl Intercept for Capture {
        fn name(&self) -> &'static str {
            "Capture"
        }

        fn modify_before_retry_loop(
            &self,
            context: &mut BeforeTransmitInterceptorContextMut<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let request = context.request();
            let body = request.body().bytes().expect("an in-memory body").to_vec();
            let length = request.headers().get("content-length").unwrap_or_default().to_owned();
            *self.0.lock().unwrap() = Some((body, length));
            Err("captured".into())
        }
    }

    /// The configuration of a test's SDK clients: made-up keys, and an endpoint nothing is sent to
    /// (each call stops at [`Capture`]).
    pub(in crate::delivery) fn sdk_config() -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"),
            ))
            .endpoint_url("http://127.0.0.1:9")
            .build()
    }

    /// Every ASCII byte (each control character, quote and backslash among them), characters of
    /// two, three and four bytes, U+2028 and U+2029, and a long run of escapes, as event texts.
    pub(in crate::delivery) fn texts() -> Vec<String> {
        let mut texts: Vec<String> = (0u8..0x80).map(|b| format!("{{\"p\":\"a{}b\"}}", char::from(b))).collect();
        texts.push("{\"p\":\"é€😀\u{2028}\u{2029}\u{7f}\"}".into());
        texts.push(format!("{{\"notes\":\"{}\"}}", "\\\"x\\\\".repeat(2_000)));
        texts
    }

    /// Asserts that the two captures hold the same body and the same, right, length.
    pub(in crate::delivery) fn assert_same(sent: &Capture, serialized: &Capture) {
        let (expected, expected_length) = serialized.take().expect("the SDK serialized");
        let (sent, sent_length) = sent.take().expect("the SDK built the request");
        assert_eq!(String::from_utf8_lossy(&sent), String::from_utf8_lossy(&expected));
        assert_eq!(sent_length, expected_length);
        assert_eq!(sent_length, sent.len().to_string());
    }
}
