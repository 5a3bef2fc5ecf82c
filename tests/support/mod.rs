//! Helpers shared by the process tests. Each test binary uses a part of them.
#![allow(dead_code)]

pub mod http;
pub mod pod;
pub mod temp;
pub mod venv;
