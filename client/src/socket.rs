//! One websocket connection to `/chat`, frame in, frame out. [`crate::Chat`] builds the
//! reconnecting session on it; tests and load tools can use it bare.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{ClientError, Result};
use crate::rest::Api;
use crate::types::{ClientFrame, ServerFrame};

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the websocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// An open `/chat` websocket of one session.
pub struct Socket {
    stream: Stream,
}

impl Socket {
    /// Opens `/chat` with the session of `api`. A refused upgrade (bad token: 401) comes back
    /// as [`ClientError::Api`] with the server's code.
    pub async fn connect(api: &Api) -> Result<Socket> {
        let url = api.chat_url()?;
        let attempt = tokio_tungstenite::connect_async(url.as_str());
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Err(_) => Err(ClientError::Timeout(CONNECT_TIMEOUT)),
            Ok(Ok((stream, _))) => Ok(Socket { stream }),
            Ok(Err(WsError::Http(resp))) => {
                let status = resp.status().as_u16();
                let body = resp.body().clone().unwrap_or_default();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let text = |k: &str| v["error"][k].as_str().map(str::to_owned);
                Err(ClientError::Api {
                    status,
                    code: text("code").unwrap_or_else(|| "http_error".into()),
                    message: text("message").unwrap_or_else(|| format!("HTTP {status}")),
                })
            }
            Ok(Err(e)) => Err(e.into()),
        }
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<()> {
        let text = serde_json::to_string(frame).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.stream.send(Message::Text(text)).await?;
        Ok(())
    }

    /// Sends raw text (for testing the server's answers to bad frames).
    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        self.stream.send(Message::Text(text.to_owned())).await?;
        Ok(())
    }

    /// The next frame from the server. Pings are answered on the way; a close frame or the end
    /// of the stream is [`ClientError::Closed`]. A bare `heartbeat` text reads as
    /// [`ServerFrame::Heartbeat`].
    pub async fn recv(&mut self) -> Result<ServerFrame> {
        loop {
            match self.stream.next().await {
                None => return Err(ClientError::Closed(None)),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(t))) => {
                    if t == "heartbeat" {
                        return Ok(ServerFrame::Heartbeat);
                    }
                    return serde_json::from_str(&t)
                        .map_err(|e| ClientError::Decode(format!("{e}: {t}")));
                }
                Some(Ok(Message::Close(c))) => {
                    return Err(ClientError::Closed(c.map(|c| u16::from(c.code))))
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// [`Socket::recv`] with a deadline.
    pub async fn recv_within(&mut self, deadline: Duration) -> Result<ServerFrame> {
        tokio::time::timeout(deadline, self.recv())
            .await
            .map_err(|_| ClientError::Timeout(deadline))?
    }

    /// Closes politely (1000).
    pub async fn close(mut self) -> Result<()> {
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        };
        self.stream.close(Some(frame)).await?;
        Ok(())
    }
}
