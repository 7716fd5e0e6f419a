//! The binary's error type: an error, an exit code, and an optional hint
//! saying what to do. Library modules have their own `thiserror` enums; they
//! convert into this at the command boundary.

use std::fmt;

pub(crate) struct CommandError {
    pub code: u8,
    pub error: anyhow::Error,
    pub hint: Option<String>,
}

pub(crate) type CommandResult<T = ()> = Result<T, CommandError>;

impl CommandError {
    /// A failure the user must act on (exit 1).
    pub(crate) fn user(message: impl fmt::Display) -> CommandError {
        CommandError {
            code: 1,
            error: anyhow::anyhow!("{message}"),
            hint: None,
        }
    }

    /// Bad usage (exit 2).
    pub(crate) fn usage(message: impl fmt::Display) -> CommandError {
        CommandError {
            code: 2,
            ..CommandError::user(message)
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> CommandError {
        self.hint = Some(hint.into());
        self
    }

    /// Is this a closed stdout pipe (which counts as success)?
    pub(crate) fn is_broken_pipe(&self) -> bool {
        self.error.chain().any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        })
    }
}

impl<E: Into<anyhow::Error>> From<E> for CommandError {
    fn from(error: E) -> Self {
        CommandError {
            code: 1,
            error: error.into(),
            hint: None,
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The error and its causes, each said once: a library message that
        // already quotes its cause (`cannot unlock X: no usable key…`) is
        // not followed by that cause again.
        let mut text = self.error.to_string();
        for cause in self.error.chain().skip(1) {
            let cause = cause.to_string();
            if !text.contains(&cause) {
                text.push_str(": ");
                text.push_str(&cause);
            }
        }
        write!(f, "error: {text}")?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}
