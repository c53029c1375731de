//! The UDP transport: `udp_send` broadcasts to the LAN broadcast address; `udp_recv` listens on
//! the cluster port. Sockets are made with socket2 so several nodes on one host can all bind the
//! port (SO_REUSEADDR, SO_REUSEPORT) and all hear each broadcast, and so the receive buffer can
//! be sized for bursts.
//!
//! Each node also has a unicast socket on an ephemeral port; it sends the broadcasts too, so
//! the source address of a node's packets is where to ask it for a resend.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Inbound;

/// Receive buffer asked for: a burst of a thousand full packets with kernel overhead.
const RECV_BUFFER: usize = 8 * 1024 * 1024;

/// The two sockets of a node.
pub struct Udp {
    broadcast_to: SocketAddr,
    unicast: Arc<UdpSocket>,
    listen: Arc<UdpSocket>,
}

fn socket(bind: SocketAddr, shared: bool) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    if shared {
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
    }
    socket.set_broadcast(true)?;
    grow_recv_buffer(&socket);
    socket.set_nonblocking(true)?;
    socket.bind(&bind.into())?;
    UdpSocket::from_std(socket.into())
}

/// Asks for [`RECV_BUFFER`]; as root, past the `rmem_max` cap (SO_RCVBUFFORCE).
fn grow_recv_buffer(socket: &Socket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let size = RECV_BUFFER as libc::c_int;
        // SAFETY: a valid socket fd and a pointer to an int of the stated length.
        let forced = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if forced == 0 {
            return;
        }
    }
    if let Err(err) = socket.set_recv_buffer_size(RECV_BUFFER) {
        tracing::warn!(%err, "cluster: cannot size the UDP receive buffer");
    }
}

impl Udp {
    /// Binds the listening socket on `port` at the broadcast address, and the unicast socket.
    pub fn bind(broadcast_to: SocketAddr, port: u16) -> std::io::Result<Self> {
        let listen_ip = match broadcast_to {
            SocketAddr::V4(v4) => *v4.ip(),
            SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        let listen = socket(SocketAddr::V4(SocketAddrV4::new(listen_ip, port)), true)?;
        let unicast = socket(
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            false,
        )?;
        Ok(Self {
            broadcast_to,
            unicast: Arc::new(unicast),
            listen: Arc::new(listen),
        })
    }

    /// The receive buffer the kernel granted (for the log).
    pub fn recv_buffer(&self) -> usize {
        socket2::SockRef::from(self.listen.as_ref())
            .recv_buffer_size()
            .unwrap_or_default()
    }

    /// Sends to every node on the broadcast domain.
    pub async fn broadcast(&self, packet: &[u8]) {
        if let Err(err) = self.unicast.send_to(packet, self.broadcast_to).await {
            tracing::warn!(%err, to = %self.broadcast_to, "cluster: broadcast failed");
        }
    }

    /// Sends to one node.
    pub async fn unicast(&self, to: SocketAddr, packet: &[u8]) {
        if let Err(err) = self.unicast.send_to(packet, to).await {
            tracing::debug!(%err, %to, "cluster: unicast failed");
        }
    }

    /// Starts `udp_recv` on both sockets, feeding `inbound` until `stop`.
    pub fn spawn_receivers(
        &self,
        inbound: mpsc::Sender<Inbound>,
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) {
        for socket in [self.listen.clone(), self.unicast.clone()] {
            tasks.spawn(udp_recv(socket, inbound.clone(), stop.clone()));
        }
    }
}

async fn udp_recv(socket: Arc<UdpSocket>, inbound: mpsc::Sender<Inbound>, stop: CancellationToken) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buf) => received,
            _ = stop.cancelled() => return,
        };
        match received {
            Ok((len, from)) => {
                let packet = Inbound {
                    bytes: buf[..len].to_vec(),
                    from: Some(from),
                };
                if inbound.send(packet).await.is_err() {
                    return;
                }
            }
            Err(err) => tracing::debug!(%err, "cluster: udp recv"),
        }
    }
}
