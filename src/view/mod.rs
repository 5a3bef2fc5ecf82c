//! The Runtime view: what a person sees of the platform — the projects of their workspaces and
//! how they are doing, the Python environments and their approval, the usage of each quota —
//! computed from objects already fetched and a `now`. Pure: no client, no clock, no output
//! format; the kubectl plugin prints these rows and the web console shows the same ones
//! (`console` adds who a signed-in person is, and the Studio and Admin areas).
//! `approval` builds the one write the view offers, an admin's decision on an environment.

pub mod age;
pub mod approval;
pub mod console;
pub mod envs;
pub mod runtime;
pub mod scope;
pub mod usage;

#[cfg(test)]
mod tests;
