//! Loopback ports for servers a test starts.

use std::net::TcpListener;

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released). Another
/// process may take it before the caller binds it: callers that can, retry on "address in use".
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:0 for a free port: {e}"));
    match listener.local_addr() {
        Ok(address) => address.port(),
        Err(e) => panic!("local address of a bound listener: {e}"),
    }
}

/// An `http://` URL on a loopback port nothing listens on (connections are refused).
pub fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound_and_a_dead_endpoint_refuses() {
        let port = free_port();
        assert_ne!(port, 0);
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
        let url = dead_endpoint();
        let port: u16 = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"));
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
