//! The mailroom facade and CLI: load a Company Email config, get a transport for it, validate before saving, and the `mailroom` command.
//!
//! Library users call [`load_config_file`] and [`transport_for`]; the binary calls [`cli::main`].

pub mod cli;
mod facade;
mod layers;

pub use facade::{
    LoadError, ValidatedConfig, load_config_file, load_config_file_with_text, load_config_text, load_sender_file,
    test_message, transport_for, validate,
};
pub use layers::RetryLayer;
