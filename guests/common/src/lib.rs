//! What each WASI 0.2 guest (`guests/NAME`, on `kit`) and its 0.3 twin
//! (`guests/NAME-p3`, on `kit3`) share: everything but the HTTP and CLI
//! bindings of their worlds. Each module is one pair's logic (or one
//! helper both kits use): how a request's query is read, what it is
//! answered, which attack it asks for. The twins only move those answers
//! through their own world's interfaces, so they answer byte for byte
//! alike.
//!
//! The one binding here, [`state`], is of the interfaces both worlds
//! import as they are (`wasi:keyvalue`, `wasi:config`, `wasi:logging`): it
//! is bound once, so the logic that uses it ([`counter`], [`config`]) is
//! written once too. `kit3`'s bindings of the 0.3 world are made with these
//! (`with`), so a 0.3 guest's state types are the same types.

pub mod attacks;
pub mod cli;
pub mod config;
pub mod counter;
pub mod echo;
pub mod hello;
pub mod hostile;
pub mod probe;
pub mod query;
pub mod slow;
pub mod state;
