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
    /// The local backend's scratch server: its Unix socket in the drill folder, which only
    /// PostgreSQL's user (and root) can enter.
    pub fn local(socket_dir: &std::path::Path, port: u16) -> Self {
        Self {
            host: socket_dir.display().to_string(),
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

/// Connects with a connection string (`host=… port=…` or a `postgresql://` URL); the
/// connection's driver runs as a task beside the client.
pub async fn connect_str(config: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Whether the server has left recovery; a server that cannot be reached has not.
pub async fn promoted(conn: &PgConn) -> bool {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&conn.host)
        .port(conn.port)
        .user(&conn.user)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(2));
    if let Some(p) = &conn.password {
        config.password(p);
    }
    let Ok((client, connection)) = config.connect(tokio_postgres::NoTls).await else {
        return false;
    };
    let task = tokio::spawn(connection);
    let done = client
        .query_one("select not pg_is_in_recovery()", &[])
        .await
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false);
    drop(client);
    let _ = task.await;
    done
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
