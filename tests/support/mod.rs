//! Helpers shared by the process tests. Each test binary uses a part of them.
#![allow(dead_code)]

pub mod http;
pub mod pod;
pub mod temp;
pub mod venv;

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
