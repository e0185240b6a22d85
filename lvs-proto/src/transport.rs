//! The wire format and the client connect helper.
//!
//! Framing: each message is a 4-byte big-endian length followed by that many bytes of JSON
//! (tarpc's `ClientMessage` / `Response` envelopes, serde_json). No bincode.
//!
//! Frame caps: the daemon reads requests of at most [`MAX_REQUEST_FRAME`] bytes and closes
//! the connection on a larger length prefix before reading its body (so an oversized frame
//! costs it no memory); clients accept responses of up to [`MAX_RESPONSE_FRAME`] bytes.

use std::io;
use std::path::{Path, PathBuf};

use tarpc::tokio_serde::formats::Json;
use tarpc::tokio_util::bytes::{Bytes, BytesMut};
use tarpc::tokio_util::codec::{Decoder, Encoder, Framed, LengthDelimitedCodec};
use tarpc::{ClientMessage, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;

use crate::api::{LvsControlClient, LvsControlRequest, LvsControlResponse};

/// The largest request frame the daemon reads (1 MiB).
pub const MAX_REQUEST_FRAME: usize = 1 << 20;
/// The largest response frame a client reads (16 MiB).
pub const MAX_RESPONSE_FRAME: usize = 16 << 20;

/// Length-delimited framing with separate caps for the frames read and the frames written.
#[derive(Debug)]
pub struct FrameCodec {
    read: LengthDelimitedCodec,
    write: LengthDelimitedCodec,
}

impl FrameCodec {
    /// Frames of at most `max_read` bytes are read and of at most `max_write` written.
    pub fn new(max_read: usize, max_write: usize) -> Self {
        FrameCodec {
            read: LengthDelimitedCodec::builder()
                .max_frame_length(max_read)
                .new_codec(),
            write: LengthDelimitedCodec::builder()
                .max_frame_length(max_write)
                .new_codec(),
        }
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        self.read.decode(src)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        self.write.encode(item, dst)
    }
}

/// A JSON transport over a byte stream: reads `In`, writes `Out`.
pub type JsonTransport<S, In, Out> =
    tarpc::tokio_serde::Framed<Framed<S, FrameCodec>, In, Out, Json<In, Out>>;

/// The daemon's side of a connection.
pub type ServerTransport<S> =
    JsonTransport<S, ClientMessage<LvsControlRequest>, Response<LvsControlResponse>>;

/// A client's side of a connection.
pub type ClientTransport<S> =
    JsonTransport<S, Response<LvsControlResponse>, ClientMessage<LvsControlRequest>>;

/// Wraps the daemon's end of a stream: requests capped at [`MAX_REQUEST_FRAME`].
pub fn server_transport<S: AsyncRead + AsyncWrite>(io: S) -> ServerTransport<S> {
    let framed = Framed::new(io, FrameCodec::new(MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME));
    tarpc::tokio_serde::Framed::new(framed, Json::default())
}

/// Wraps a client's end of a stream: responses capped at [`MAX_RESPONSE_FRAME`].
pub fn client_transport<S: AsyncRead + AsyncWrite>(io: S) -> ClientTransport<S> {
    let framed = Framed::new(io, FrameCodec::new(MAX_RESPONSE_FRAME, MAX_REQUEST_FRAME));
    tarpc::tokio_serde::Framed::new(framed, Json::default())
}

/// Why [`connect_unix`] failed, in a sentence naming the socket.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Nothing listens there (no socket file, or a stale one).
    #[error("lvsd is not running at {path} (no daemon listens on that socket)")]
    NotRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket's mode or its directory keeps this user out.
    #[error(
        "permission denied connecting to {path}: ask for membership in the socket's group, or run as root"
    )]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
    },
    /// Anything else.
    #[error("cannot connect to lvsd at {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Connects to the daemon's Unix socket and starts the client's dispatch task. Call it
/// inside a tokio runtime; the client is cheap to clone.
pub async fn connect_unix(path: impl AsRef<Path>) -> Result<LvsControlClient, ConnectError> {
    let path = path.as_ref();
    let stream = UnixStream::connect(path).await.map_err(|e| {
        let path = path.to_path_buf();
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                ConnectError::NotRunning { path }
            }
            io::ErrorKind::PermissionDenied => ConnectError::PermissionDenied { path },
            _ => ConnectError::Io { path, source: e },
        }
    })?;
    Ok(LvsControlClient::new(tarpc::client::Config::default(), client_transport(stream)).spawn())
}

#[cfg(test)]
mod tests {
    use futures::{SinkExt, StreamExt};
    use tarpc::context::Context;
    use tarpc::server::{BaseChannel, Channel};
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::api::LvsControl;
    use crate::error::ApiError;
    use crate::types::*;

    /// Answers `version`; everything else is "unavailable".
    #[derive(Debug, Clone)]
    struct Stub;

    fn unavailable<T>() -> Result<T, ApiError> {
        Err(ApiError::Unavailable {
            message: "stub".into(),
        })
    }

    impl LvsControl for Stub {
        async fn version(self, _: Context) -> VersionInfo {
            VersionInfo {
                daemon: "test".into(),
                api: crate::API_LEVEL,
                pid: 1,
                started_unix_ms: 0,
            }
        }
        async fn whoami(self, _: Context) -> PeerInfo {
            PeerInfo {
                actor: Actor {
                    uid: 0,
                    gid: 0,
                    pid: None,
                    user: None,
                    tls: None,
                },
                role: Role::Admin,
            }
        }
        async fn services(self, _: Context) -> Result<Vec<ServiceInfo>, ApiError> {
            unavailable()
        }
        async fn set_weight(
            self,
            _: Context,
            _: ServiceKey,
            _: RealServerKey,
            weight: u32,
        ) -> Result<WeightChange, ApiError> {
            Err(ApiError::WeightOutOfRange {
                weight: u64::from(weight),
            })
        }
        async fn drain(
            self,
            _: Context,
            _: ServiceKey,
            _: RealServerKey,
        ) -> Result<DrainInfo, ApiError> {
            unavailable()
        }
        async fn drain_status(
            self,
            _: Context,
            _: ServiceKey,
            _: RealServerKey,
        ) -> Result<DrainInfo, ApiError> {
            unavailable()
        }
        async fn undrain(
            self,
            _: Context,
            _: ServiceKey,
            _: RealServerKey,
        ) -> Result<WeightChange, ApiError> {
            unavailable()
        }
        async fn connections(self, _: Context, _: ConnQuery) -> Result<ConnPage, ApiError> {
            unavailable()
        }
        async fn decisions_since(
            self,
            _: Context,
            _: ServiceKey,
            _: u64,
        ) -> Result<Vec<DecisionInfo>, ApiError> {
            unavailable()
        }
        async fn simulate(self, _: Context, _: FlowSpec) -> Result<SimulateInfo, ApiError> {
            unavailable()
        }
        async fn events_since(self, _: Context, _: u64) -> Result<Vec<Event>, ApiError> {
            unavailable()
        }
        async fn zero_counters(self, _: Context, _: Option<ServiceKey>) -> Result<(), ApiError> {
            unavailable()
        }
        async fn kill_connection(self, _: Context, _: ConnKey) -> Result<ConnEntry, ApiError> {
            unavailable()
        }
        async fn kill_template(self, _: Context, _: TemplateKey) -> Result<ConnEntry, ApiError> {
            unavailable()
        }
        async fn save_config(self, _: Context, _: String) -> Result<SavedConfig, ApiError> {
            unavailable()
        }
        async fn topology(self, _: Context) -> Result<Topology, ApiError> {
            unavailable()
        }
        async fn add_service(self, _: Context, _: NewService) -> Result<(), ApiError> {
            unavailable()
        }
        async fn remove_service(self, _: Context, _: ServiceKey) -> Result<(), ApiError> {
            unavailable()
        }
        async fn add_real_server(
            self,
            _: Context,
            _: ServiceKey,
            _: NewRealServer,
        ) -> Result<(), ApiError> {
            unavailable()
        }
        async fn remove_real_server(
            self,
            _: Context,
            _: ServiceKey,
            _: RealServerKey,
        ) -> Result<(), ApiError> {
            unavailable()
        }
        async fn vrrp(self, _: Context) -> Result<Vec<crate::VrrpInstanceInfo>, ApiError> {
            unavailable()
        }
    }

    #[tokio::test]
    async fn json_round_trip_over_a_unix_stream() {
        let (a, b) = UnixStream::pair().unwrap_or_else(|e| panic!("{e}"));
        let channel = BaseChannel::with_defaults(server_transport(b));
        tokio::spawn(channel.execute(Stub.serve()).for_each(|f| async {
            tokio::spawn(f);
        }));
        let client =
            LvsControlClient::new(tarpc::client::Config::default(), client_transport(a)).spawn();
        let v = client
            .version(tarpc::context::current())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.api, crate::API_LEVEL);
        let r = client
            .set_weight(
                tarpc::context::current(),
                ServiceKey::tcp([203, 0, 113, 10], 80),
                RealServerKey::new([192, 0, 2, 11], 80),
                70000,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.map_err(|e| e.to_string()),
            Err("weight 70000 out of range 0..=65535".to_string())
        );
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_it_is_read() {
        let (mut a, b) = UnixStream::pair().unwrap_or_else(|e| panic!("{e}"));
        let mut server = server_transport(b);
        // A 100 MiB length prefix and no body: the server fails at once.
        a.write_all(&(100u32 << 20).to_be_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = server.next().await;
        assert!(matches!(got, Some(Err(_))), "{got:?}");
        // A small request still goes through.
        let (c, d) = UnixStream::pair().unwrap_or_else(|e| panic!("{e}"));
        let mut client = client_transport(c);
        let mut server = server_transport(d);
        let msg = ClientMessage::Cancel {
            trace_context: Default::default(),
            request_id: 1,
        };
        client.send(msg).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(server.next().await, Some(Ok(_))));
    }

    #[tokio::test]
    async fn a_missing_socket_says_the_daemon_is_not_running() {
        let path = std::env::temp_dir().join(format!("lvs-proto-nosock-{}", std::process::id()));
        let err = connect_unix(&path).await.err().map(|e| e.to_string());
        assert_eq!(
            err,
            Some(format!(
                "lvsd is not running at {} (no daemon listens on that socket)",
                path.display()
            ))
        );
    }
}
