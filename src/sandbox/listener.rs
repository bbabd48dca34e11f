//! The sandbox's listener: plain TCP or TLS, with connections that can be made to fail on demand
//! (the `reset` fault) by dropping them with an RST instead of writing the response.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::Shared;

pub(crate) struct Listener {
    tcp: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
}

impl Listener {
    pub fn new(tcp: TcpListener, shared: Arc<Shared>, tls: Option<TlsAcceptor>) -> Listener {
        Listener { tcp, shared, tls }
    }
}

/// The peer of a connection, as handlers see it (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A connection that checks, before each write, whether its response is to be replaced by a reset.
pub(crate) struct Connection {
    stream: Stream,
    peer: SocketAddr,
    shared: Arc<Shared>,
}

impl Connection {
    fn tcp(&self) -> &TcpStream {
        match &self.stream {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, peer) = match self.tcp.accept().await {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let stream = match &self.tls {
                None => Stream::Plain(tcp),
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(tls) => Stream::Tls(Box::new(tls)),
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        continue;
                    }
                },
            };
            self.shared.connections.fetch_add(1, Ordering::SeqCst);
            return (
                Connection {
                    stream,
                    peer,
                    shared: self.shared.clone(),
                },
                peer,
            );
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let reset = this
            .shared
            .resets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&this.peer);
        if reset {
            // Linger 0 makes the close an RST, which is what a client sees when a load balancer
            // or the network drops the connection mid-request.
            #[allow(deprecated)]
            let _ = this.tcp().set_linger(Some(std::time::Duration::ZERO));
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "sandbox fault: connection reset",
            )));
        }
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
