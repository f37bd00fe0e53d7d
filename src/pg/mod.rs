//! PostgreSQL connections (edge): where a server listens, connecting with a read-only session,
//! and running one statement in a read-only transaction with a statement timeout.

pub mod baseline;
pub mod verify;

use std::time::Duration;

/// Where the restored server listens and whom to connect as.
#[derive(Clone)]
pub struct PgConn {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl PgConn {
    /// The local backend's scratch server: trust authentication on loopback.
    pub fn local(port: u16) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            password: None,
        }
    }
}

pub fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Connects to `database` with a session that is read-only by default.
pub async fn connect(conn: &PgConn, database: &str) -> Result<tokio_postgres::Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&conn.host)
        .port(conn.port)
        .user(&conn.user)
        .dbname(database)
        .connect_timeout(Duration::from_secs(10))
        // Read-only by default for the whole session, so a check cannot commit its way out of
        // the read-only transaction it runs in.
        .options("-c default_transaction_read_only=on");
    if let Some(p) = &conn.password {
        config.password(p);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting to {database}: {}", db_message(&e)))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Runs one statement in `BEGIN READ ONLY` with a statement timeout; returns the first column
/// of the first row as text.
pub async fn read_only_value(
    client: &tokio_postgres::Client,
    sql: &str,
    timeout: Duration,
) -> Result<Option<String>, String> {
    client
        .batch_execute(&format!(
            "begin read only; set local statement_timeout = {}",
            timeout.as_millis()
        ))
        .await
        .map_err(|e| db_message(&e))?;
    let result = client.simple_query(sql).await;
    let _ = client.batch_execute("commit").await;
    let messages = result.map_err(|e| db_message(&e))?;
    Ok(messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .flatten())
}
