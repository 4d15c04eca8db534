//! A TCP relay in front of PostgreSQL that a test can cut and restore: to the server that is
//! its database stopping (connections reset, new ones refused) and starting again.

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub struct Relay {
    /// The database's URL through the relay.
    pub database_url: String,
    port: u16,
    target: String,
    tasks: Option<JoinSet<()>>,
}

impl Relay {
    /// Starts a relay to the server of `database_url` (a `postgres://` URL).
    pub async fn in_front_of(database_url: &str) -> Self {
        let url = reqwest::Url::parse(database_url).unwrap();
        let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relayed = url;
        relayed.set_host(Some("127.0.0.1")).unwrap();
        relayed.set_port(Some(port)).unwrap();
        let mut relay = Self {
            database_url: relayed.to_string(),
            port,
            target,
            tasks: None,
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target.clone();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut pipes = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                pipes.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    /// Closes the listener and every relayed connection.
    pub async fn cut(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.shutdown().await;
        }
    }

    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}
