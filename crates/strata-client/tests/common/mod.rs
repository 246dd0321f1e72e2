//! Test support: the shared in-process broker and wait (`strata-testkit`) and a mock broker
//! for scripted responses ([`mock`]).

#![allow(dead_code, unused_imports)]

pub mod mock;

pub use strata_testkit::{wait_for, TestBroker};
