//! The S3 REST protocol, through the `s3s` crate: it parses requests (path-style and
//! virtual-host-style), verifies SigV4 with S3's rules (single-encoded paths, `UNSIGNED-PAYLOAD`,
//! aws-chunked bodies with signed chunks or trailing checksums, presigned URLs) and writes S3's XML
//! and errors. The lake supplies the keys' secrets ([`Keys`]), the caller and its session token
//! check ([`Access`]) and the operations ([`Front`], over `ops/s3.rs`): the same identities and
//! policies as every other service of the lake.

use std::{str::FromStr, sync::Arc};

use s3s::{
    S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result,
    access::{S3Access, S3AccessContext},
    auth::{S3Auth, SecretKey},
    dto,
};

use crate::{Lake, error::AwsError, identity::Caller};

/// The S3 service over `lake`.
pub(crate) fn service(lake: Arc<Lake>) -> s3s::service::S3Service {
    let mut builder = s3s::service::S3ServiceBuilder::new(Front(lake.clone()));
    builder.set_auth(Keys(lake.clone()));
    builder.set_access(Access(lake));
    builder.build()
}

/// The access key of a request signed for S3 (in its `Authorization` header or a presigned URL's
/// query); `None` when it is not signed for S3.
pub(crate) fn s3_access_key(headers: &http::HeaderMap, query: &str) -> Option<String> {
    let scope = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .map(|c| c.split([',', ' ']).next().unwrap_or("").to_owned())
        .or_else(|| {
            form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "X-Amz-Credential").map(|(_, v)| v.into_owned())
        })?;
    let mut parts = scope.split('/');
    let key = parts.next()?.to_owned();
    (parts.nth(2) == Some("s3")).then_some(key)
}

struct Keys(Arc<Lake>);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.identity().secret(access_key) {
            Some(secret) => Ok(SecretKey::from(secret)),
            None => Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}

struct Access(Arc<Lake>);

#[async_trait::async_trait]
impl S3Access for Access {
    /// Every request is signed (s3s verified the signature with the key's secret); the caller it
    /// stands for rides along to the operation, which authorizes it on its bucket and key.
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3s::s3_error!(
                AccessDenied,
                "Anonymous requests are not accepted: sign the request with SigV4."
            ));
        };
        let access_key = credentials.access_key.clone();
        let token =
            cx.headers().get("x-amz-security-token").and_then(|v| v.to_str().ok()).map(str::to_owned).or_else(|| {
                form_urlencoded::parse(cx.uri().query().unwrap_or("").as_bytes())
                    .find(|(k, _)| k == "X-Amz-Security-Token")
                    .map(|(_, v)| v.into_owned())
            });
        let caller =
            self.0.identity().verified_caller(&access_key, token.as_deref(), "us-east-1").map_err(|err| match err {
                crate::identity::AuthError::Expired => {
                    s3s::s3_error!(ExpiredToken, "The provided token has expired.")
                }
                _ => s3s::s3_error!(InvalidToken, "The provided token is malformed or otherwise invalid."),
            })?;
        cx.extensions_mut().insert(caller);
        Ok(())
    }
}

/// The caller of a request, in the region it was signed for.
fn caller<T>(req: &S3Request<T>) -> S3Result<Caller> {
    let mut caller = req
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| s3s::s3_error!(AccessDenied, "The request was not authenticated."))?;
    if let Some(region) = &req.region {
        caller.region = region.as_str().to_owned();
    }
    Ok(caller)
}

/// A lake error as S3 answers it: its code and status, AWS's message.
fn s3_error(err: AwsError) -> S3Error {
    let code = S3ErrorCode::from_str(err.code).unwrap_or(S3ErrorCode::InternalError);
    let mut out = S3Error::with_message(code, err.message);
    if let Ok(status) = http::StatusCode::from_u16(err.status) {
        out.set_status_code(status);
    }
    out
}

fn timestamp(ms: i64) -> dto::Timestamp {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    dto::Timestamp::from(at)
}

fn etag(quoted: &str) -> dto::ETag {
    dto::ETag::Strong(quoted.trim_matches('"').to_owned())
}

struct Front(Arc<Lake>);

#[async_trait::async_trait]
impl S3 for Front {
    async fn create_bucket(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        let caller = caller(&req)?;
        let bucket = &req.input.bucket;
        self.0.create_bucket(&caller, bucket).await.map_err(s3_error)?;
        Ok(S3Response::new(dto::CreateBucketOutput { location: Some(format!("/{bucket}")) }))
    }

    async fn head_bucket(&self, req: S3Request<dto::HeadBucketInput>) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        let bucket = self.0.head_bucket(&caller(&req)?, &req.input.bucket).map_err(s3_error)?;
        Ok(S3Response::new(dto::HeadBucketOutput { bucket_region: Some(bucket.region), ..Default::default() }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        self.0.delete_bucket(&caller(&req)?, &req.input.bucket).await.map_err(s3_error)?;
        Ok(S3Response::new(dto::DeleteBucketOutput::default()))
    }

    async fn list_buckets(
        &self,
        req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        let caller = caller(&req)?;
        let buckets = self.0.list_buckets(&caller).map_err(s3_error)?;
        let buckets = buckets
            .into_iter()
            .map(|b| dto::Bucket {
                bucket_region: Some(b.region),
                creation_date: Some(timestamp(b.created_ms)),
                name: Some(b.name),
            })
            .collect();
        Ok(S3Response::new(dto::ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(dto::Owner { display_name: None, id: Some(caller.account) }),
            ..Default::default()
        }))
    }

    async fn put_object(&self, req: S3Request<dto::PutObjectInput>) -> S3Result<S3Response<dto::PutObjectOutput>> {
        let caller = caller(&req)?;
        let dto::PutObjectInput { bucket, key, body, content_type, .. } = req.input;
        // The body was bounded (and buffered) before it reached s3s; aws-chunked framing is gone.
        let data = match body {
            Some(body) => read_all(body).await?,
            None => bytes::Bytes::new(),
        };
        let size = data.len() as i64;
        let tag = self.0.put_object(&caller, &bucket, &key, data, content_type).await.map_err(s3_error)?;
        Ok(S3Response::new(dto::PutObjectOutput { e_tag: Some(etag(&tag)), size: Some(size), ..Default::default() }))
    }

    async fn get_object(&self, req: S3Request<dto::GetObjectInput>) -> S3Result<S3Response<dto::GetObjectOutput>> {
        let caller = caller(&req)?;
        if req.input.range.is_some() || req.input.part_number.is_some() {
            return Err(s3s::s3_error!(
                NotImplemented,
                "The lake serves whole objects: leave out Range and partNumber."
            ));
        }
        let (info, data) = self.0.get_object(&caller, &req.input.bucket, &req.input.key, true).map_err(s3_error)?;
        let body = dto::StreamingBlob::from(s3s::Body::from(data));
        Ok(S3Response::new(dto::GetObjectOutput {
            body: Some(body),
            content_length: Some(info.size as i64),
            content_type: info.content_type,
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.modified_ms)),
            ..Default::default()
        }))
    }

    async fn head_object(&self, req: S3Request<dto::HeadObjectInput>) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        let caller = caller(&req)?;
        let (info, _) = self.0.get_object(&caller, &req.input.bucket, &req.input.key, false).map_err(s3_error)?;
        Ok(S3Response::new(dto::HeadObjectOutput {
            content_length: Some(info.size as i64),
            content_type: info.content_type,
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.modified_ms)),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        self.0.delete_object(&caller(&req)?, &req.input.bucket, &req.input.key).await.map_err(s3_error)?;
        Ok(S3Response::new(dto::DeleteObjectOutput::default()))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        let caller = caller(&req)?;
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(1000).clamp(0, 1000);
        let after = input.continuation_token.clone().or_else(|| input.start_after.clone()).unwrap_or_default();
        let page = self
            .0
            .list_objects(&caller, &input.bucket, &prefix, input.delimiter.as_deref(), &after, max_keys as usize)
            .map_err(s3_error)?;
        let key_count = (page.objects.len() + page.prefixes.len()) as i32;
        let contents = page
            .objects
            .into_iter()
            .map(|o| dto::Object {
                e_tag: Some(etag(&o.etag)),
                key: Some(o.key),
                last_modified: Some(timestamp(o.modified_ms)),
                size: Some(o.size as i64),
                storage_class: Some(dto::ObjectStorageClass::from_static(dto::ObjectStorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        let common_prefixes =
            page.prefixes.into_iter().map(|p| dto::CommonPrefix { prefix: Some(p) }).collect::<Vec<_>>();
        Ok(S3Response::new(dto::ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(prefix),
            max_keys: Some(max_keys),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.next.is_some()),
            next_continuation_token: page.next,
            contents: Some(contents),
            common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
            delimiter: input.delimiter,
            start_after: input.start_after,
            ..Default::default()
        }))
    }
}

/// A request body s3s hands over, whole (it was bounded before s3s saw it).
async fn read_all(body: dto::StreamingBlob) -> S3Result<bytes::Bytes> {
    use futures::TryStreamExt;
    let chunks: Vec<bytes::Bytes> =
        body.try_collect().await.map_err(|_| s3s::s3_error!(IncompleteBody, "The request body could not be read."))?;
    Ok(chunks.concat().into())
}
