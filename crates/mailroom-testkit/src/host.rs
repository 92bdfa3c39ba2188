//! Runs a server's accept loop on a dedicated thread with its own tokio runtime, so shutdown is synchronous and frees the port.
//!
//! A dedicated runtime keeps the fake servers responsive even when the test's own runtime is
//! busy or blocked, and lets [`ServerHost::shutdown`] (and `Drop`) wait until the listener and
//! every connection are really gone before returning.

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::KitError;

/// Owns a listening socket and the thread serving it.
#[derive(Debug)]
pub(crate) struct ServerHost {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHost {
    /// Binds `bind` (port 0 = ephemeral) and serves every accepted connection with `serve`.
    ///
    /// `worker_threads` = 1 runs a current-thread runtime; more runs a multi-thread one.
    pub(crate) fn start<F, Fut>(name: &str, bind: SocketAddr, worker_threads: usize, serve: F) -> Result<Self, KitError>
    where
        F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = StdTcpListener::bind(bind).map_err(|e| KitError::io("bind", e))?;
        listener.set_nonblocking(true).map_err(|e| KitError::io("set_nonblocking", e))?;
        let addr = listener.local_addr().map_err(|e| KitError::io("local_addr", e))?;
        let runtime = if worker_threads <= 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(worker_threads)
                .thread_name(format!("{name}-worker"))
                .enable_all()
                .build()
        }
        .map_err(|e| KitError::io("tokio runtime", e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(accept_loop(listener, stopped, serve));
                // Connection tasks were aborted; give their destructors a moment, never forever.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| KitError::io("spawn server thread", e))?;
        Ok(Self { addr, stop: Some(stop), thread: Some(thread) })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection and releases the port before returning.
    pub(crate) fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!(addr = %self.addr, "a fake server thread panicked");
        }
    }
}

impl Drop for ServerHost {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop<F, Fut>(listener: StdTcpListener, mut stopped: oneshot::Receiver<()>, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "cannot register the listener with tokio");
            return;
        }
    };
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(stream, peer));
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
