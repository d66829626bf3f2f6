//! S3, the subset a destination of audit files needs: buckets (`CreateBucket`, `HeadBucket`,
//! `DeleteBucket`, `ListBuckets`) and objects (`PutObject`, `GetObject`, `HeadObject`,
//! `ListObjectsV2`, `DeleteObject`). Behind the same identities and policies as the rest of the
//! lake: actions `s3:*` on `arn:aws:s3:::BUCKET` and `arn:aws:s3:::BUCKET/KEY`. Buckets have no
//! bucket policies: only callers of the owning account reach a bucket, as through a customer's
//! own role.
//!
//! A `PutObject` to an existing key replaces the object whole, as in S3; the wire protocol is in
//! `api/s3.rs`.

use md5::Digest;

use super::internal;
use crate::{
    Lake,
    authz::{self, Target},
    error::AwsError,
    identity::Caller,
    store::model::{Bucket, ObjectInfo},
};

/// Most keys one `ListObjectsV2` page returns.
const MAX_KEYS: usize = 1000;

/// One page of `ListObjectsV2`.
#[derive(Debug, Clone)]
pub struct ObjectPage {
    /// The objects, in key order.
    pub objects: Vec<ObjectInfo>,
    /// The common prefixes (with a delimiter), in order.
    pub prefixes: Vec<String>,
    /// Where the next page starts, when there is one.
    pub next: Option<String>,
}

fn access_denied(caller: &Caller, action: &str, arn: &str) -> AwsError {
    AwsError::with_status(
        403,
        "AccessDenied",
        format!("User: {} is not authorized to perform: {action} on resource: \"{arn}\"", caller.arn),
    )
}

fn no_such_bucket(name: &str) -> AwsError {
    AwsError::with_status(404, "NoSuchBucket", format!("The specified bucket {name:?} does not exist."))
}

impl Lake {
    /// Requires `action` on `arn` of `bucket`, as S3 refuses it (`AccessDenied`, 403).
    fn s3_require(&self, caller: &Caller, action: &str, arn: &str, owner: &str) -> Result<(), AwsError> {
        let verdict = authz::authorize(self.store(), caller, action, Target::owned(arn, owner), &Default::default());
        if verdict.allowed() { Ok(()) } else { Err(access_denied(caller, action, arn)) }
    }

    /// The bucket `name` when the caller may do `action` on it (or on `object` in it).
    fn s3_bucket(&self, caller: &Caller, action: &str, name: &str, object: Option<&str>) -> Result<Bucket, AwsError> {
        let arn = match object {
            Some(key) => format!("arn:aws:s3:::{name}/{key}"),
            None => format!("arn:aws:s3:::{name}"),
        };
        match self.store().bucket(name) {
            Some(bucket) => {
                self.s3_require(caller, action, &arn, &bucket.account)?;
                Ok(bucket)
            }
            // A bucket that does not exist is named only to whom may look for it.
            None => {
                self.s3_require(caller, action, &arn, &caller.account)?;
                Err(no_such_bucket(name))
            }
        }
    }

    /// `CreateBucket` in the caller's region.
    pub async fn create_bucket(&self, caller: &Caller, name: &str) -> Result<(), AwsError> {
        self.s3_require(caller, "s3:CreateBucket", &format!("arn:aws:s3:::{name}"), &caller.account)?;
        let _guard = self.control.lock().await;
        if let Some(existing) = self.store().bucket(name) {
            return Err(if existing.account == caller.account {
                AwsError::with_status(
                    409,
                    "BucketAlreadyOwnedByYou",
                    "Your previous request to create the named bucket succeeded and you already own it.",
                )
            } else {
                AwsError::with_status(
                    409,
                    "BucketAlreadyExists",
                    "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
                )
            });
        }
        let bucket = Bucket {
            name: name.to_owned(),
            account: caller.account.clone(),
            region: caller.region.clone(),
            created_ms: super::now() * 1000,
        };
        self.store().put_bucket(bucket).await.map_err(internal)
    }

    /// `HeadBucket`: the bucket's region when it exists and the caller may list it.
    pub fn head_bucket(&self, caller: &Caller, name: &str) -> Result<Bucket, AwsError> {
        self.s3_bucket(caller, "s3:ListBucket", name, None)
    }

    /// `DeleteBucket`, when it is empty.
    pub async fn delete_bucket(&self, caller: &Caller, name: &str) -> Result<(), AwsError> {
        self.s3_bucket(caller, "s3:DeleteBucket", name, None)?;
        let _guard = self.control.lock().await;
        if self.store().bucket_has_objects(name).map_err(internal)? {
            return Err(AwsError::with_status(409, "BucketNotEmpty", "The bucket you tried to delete is not empty."));
        }
        self.store().delete_bucket(name).await.map_err(internal)
    }

    /// `ListBuckets`: the caller's account's buckets.
    pub fn list_buckets(&self, caller: &Caller) -> Result<Vec<Bucket>, AwsError> {
        self.s3_require(caller, "s3:ListAllMyBuckets", "arn:aws:s3:::*", &caller.account)?;
        Ok(self.store().buckets_of(&caller.account))
    }

    /// `PutObject`: stores `data` under `key`, replacing what was there; returns its ETag.
    pub async fn put_object(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        data: bytes::Bytes,
        content_type: Option<String>,
    ) -> Result<String, AwsError> {
        self.s3_bucket(caller, "s3:PutObject", bucket, Some(key))?;
        if key.is_empty() || key.len() > 1024 {
            return Err(AwsError::client("KeyTooLongError", "Your key is too long (at most 1,024 bytes)."));
        }
        let etag = format!("\"{}\"", hex::encode(md5::Md5::digest(&data)));
        let object = ObjectInfo {
            key: key.to_owned(),
            size: data.len() as u64,
            etag: etag.clone(),
            modified_ms: audit_event::EventTime::now().unix_millis(),
            content_type,
        };
        let replaced = self.store().put_object(bucket, object, data).await.map_err(internal)?;
        if replaced {
            // S3 keeps no history here either: the new object replaces the old whole. Logged, so
            // that a writer's repeats can be counted.
            tracing::info!(bucket, key, "An object was written again under its key and replaced.");
        }
        Ok(etag)
    }

    /// `GetObject` (with its bytes) or `HeadObject` (without).
    pub fn get_object(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        with_data: bool,
    ) -> Result<(ObjectInfo, Vec<u8>), AwsError> {
        self.s3_bucket(caller, "s3:GetObject", bucket, Some(key))?;
        self.store()
            .object(bucket, key, with_data)
            .map_err(internal)?
            .ok_or_else(|| AwsError::with_status(404, "NoSuchKey", "The specified key does not exist."))
    }

    /// `DeleteObject`: succeeds whether or not the key exists, as in S3.
    pub async fn delete_object(&self, caller: &Caller, bucket: &str, key: &str) -> Result<(), AwsError> {
        self.s3_bucket(caller, "s3:DeleteObject", bucket, Some(key))?;
        self.store().delete_object(bucket, key).await.map_err(internal)
    }

    /// `ListObjectsV2`: up to `max_keys` (at most 1,000) keys starting with `prefix` after
    /// `start_after` or the continuation token; with a `delimiter`, keys that hold it past the
    /// prefix are rolled up into common prefixes.
    pub fn list_objects(
        &self,
        caller: &Caller,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: &str,
        max_keys: usize,
    ) -> Result<ObjectPage, AwsError> {
        self.s3_bucket(caller, "s3:ListBucket", bucket, None)?;
        let max_keys = max_keys.min(MAX_KEYS);
        let mut page = ObjectPage { objects: Vec::new(), prefixes: Vec::new(), next: None };
        let mut after = after.to_owned();
        // Each round reads a bounded window; a common prefix skips past all its keys at once.
        'outer: loop {
            let window = self.store().objects(bucket, prefix, &after, MAX_KEYS + 1).map_err(internal)?;
            if window.is_empty() {
                break;
            }
            for object in window {
                if page.objects.len() + page.prefixes.len() >= max_keys {
                    page.next = Some(after.clone());
                    break 'outer;
                }
                let rest = &object.key[prefix.len()..];
                match delimiter.filter(|d| !d.is_empty()).and_then(|d| rest.find(d).map(|i| i + d.len())) {
                    Some(end) => {
                        let common = format!("{prefix}{}", &rest[..end]);
                        // Everything under the common prefix sorts before this successor.
                        after = format!("{common}\u{10FFFF}");
                        page.prefixes.push(common);
                        continue 'outer;
                    }
                    None => {
                        after = object.key.clone();
                        page.objects.push(object);
                    }
                }
            }
        }
        Ok(page)
    }
}
