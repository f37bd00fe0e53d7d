//! `destinationPath` URLs as CNPG and barman-cloud accept them.

use std::path::PathBuf;

use url::Url;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    S3 {
        bucket: String,
    },
    Azure {
        account: String,
        container: String,
        endpoint: Option<String>,
    },
    Gcs {
        bucket: String,
    },
    File {
        root: PathBuf,
    },
}

/// Where a barman-cloud archive lives: the provider, its bucket or container, and the key prefix
/// under which the `<serverName>/` folders sit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub provider: Provider,
    pub prefix: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid destinationPath {path:?}: {reason}")]
pub struct LocationError {
    pub path: String,
    pub reason: String,
}

impl Location {
    /// Parses `s3://bucket/path`, `gs://bucket/path`, `https://<acct>.blob.core.windows.net/<container>/path`,
    /// an emulator form `http://host:port/<acct>/<container>/path`, or `file:///dir`.
    pub fn parse(path: &str) -> Result<Self, LocationError> {
        let err = |reason: &str| LocationError {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let url = Url::parse(path).map_err(|_| {
            err("expected s3://bucket/path, gs://bucket/path, https://<account>.blob.core.windows.net/<container>/path or file:///dir")
        })?;
        let segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
        let host = url.host_str().unwrap_or_default();
        let join = |parts: &[&str]| parts.join("/");
        let location = match url.scheme() {
            "s3" | "gs" => {
                if host.is_empty() {
                    return Err(err("the bucket name is missing"));
                }
                let bucket = host.to_string();
                let provider = if url.scheme() == "s3" {
                    Provider::S3 { bucket }
                } else {
                    Provider::Gcs { bucket }
                };
                Location {
                    provider,
                    prefix: join(&segments),
                }
            }
            "http" | "https" => {
                if let Some(account) = host.strip_suffix(".blob.core.windows.net") {
                    let (container, rest) = segments
                        .split_first()
                        .ok_or_else(|| err("the container name is missing"))?;
                    Location {
                        provider: Provider::Azure {
                            account: account.to_string(),
                            container: container.to_string(),
                            endpoint: None,
                        },
                        prefix: join(rest),
                    }
                } else {
                    // Azurite and other emulators put the account in the path.
                    if segments.len() < 2 {
                        return Err(err(
                            "expected http(s)://host:port/<account>/<container>/path for an Azure emulator",
                        ));
                    }
                    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                    Location {
                        provider: Provider::Azure {
                            account: segments[0].to_string(),
                            container: segments[1].to_string(),
                            endpoint: Some(format!(
                                "{}://{host}{port}/{}",
                                url.scheme(),
                                segments[0]
                            )),
                        },
                        prefix: join(&segments[2..]),
                    }
                }
            }
            "file" => {
                let root = url
                    .to_file_path()
                    .map_err(|_| err("expected an absolute file:///path"))?;
                Location {
                    provider: Provider::File { root },
                    prefix: String::new(),
                }
            }
            other => return Err(err(&format!("unsupported scheme {other:?}"))),
        };
        Ok(location)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_provider() {
        let s3 = Location::parse("s3://bucket/team/app/").unwrap();
        assert_eq!(
            s3.provider,
            Provider::S3 {
                bucket: "bucket".into()
            }
        );
        assert_eq!(s3.prefix, "team/app");
        assert_eq!(Location::parse("s3://bucket").unwrap().prefix, "");
        let az = Location::parse("https://acct.blob.core.windows.net/backups/pg").unwrap();
        assert_eq!(
            az.provider,
            Provider::Azure {
                account: "acct".into(),
                container: "backups".into(),
                endpoint: None
            }
        );
        assert_eq!(az.prefix, "pg");
        let emu = Location::parse("http://127.0.0.1:10000/devstoreaccount1/c/x/y").unwrap();
        assert_eq!(
            emu.provider,
            Provider::Azure {
                account: "devstoreaccount1".into(),
                container: "c".into(),
                endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".into())
            }
        );
        assert_eq!(emu.prefix, "x/y");
        assert_eq!(
            Location::parse("gs://b/p").unwrap().provider,
            Provider::Gcs { bucket: "b".into() }
        );
        assert!(matches!(
            Location::parse("file:///tmp/x").unwrap().provider,
            Provider::File { .. }
        ));
    }

    #[test]
    fn rejects_what_barman_would() {
        assert!(
            Location::parse("bucket/path")
                .unwrap_err()
                .to_string()
                .contains("expected s3://")
        );
        assert!(Location::parse("ftp://x/y").is_err());
        assert!(Location::parse("https://acct.blob.core.windows.net/").is_err());
    }
}
