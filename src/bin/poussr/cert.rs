//! `poussr cert create|show`: certificates for https:// and wss:// on a LAN with no PKI.

use std::path::PathBuf;

use clap::Subcommand;

use crate::serve::data_dir_or_default;

#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Make a server certificate for this machine, signed by Poussr's local CA (made too, the first time).
    Create {
        /// The folder of the files [default: `tls` in the data folder, which `serve --tls` uses].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The names and addresses it is for [default: localhost, the host name, its .local name and every
        /// address of this machine]. Repeat for several.
        #[arg(long = "name")]
        names: Vec<String>,
        /// Make a new CA even if there is one (every device must then trust the new one).
        #[arg(long)]
        new_ca: bool,
        /// The data folder [default: the OS data folder].
        #[arg(long, env = "POUSSR_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Show a certificate's names, dates and fingerprint [default: the data folder's CA and certificate].
    Show {
        /// A PEM certificate file.
        file: Option<PathBuf>,
        /// The data folder [default: the OS data folder].
        #[arg(long, env = "POUSSR_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// `poussr cert …`.
pub(crate) fn cert(command: CertCommand) -> Result<(), String> {
    let folder = |data_dir: Option<PathBuf>| data_dir_or_default(data_dir.as_deref()).map(|d| d.join("tls"));
    let text = match command {
        CertCommand::Create { dir, names, new_ca, data_dir } => {
            let dir = match dir {
                Some(dir) => dir,
                None => folder(data_dir)?,
            };
            let names = if names.is_empty() { poussr::cert::machine_names() } else { names };
            poussr::cert::create_and_describe(&dir, &names, new_ca)?
        }
        CertCommand::Show { file, data_dir } => {
            let files = match file {
                Some(file) => vec![file],
                None => {
                    let f = poussr::cert::CertFiles::in_dir(&folder(data_dir)?);
                    vec![f.ca, f.cert]
                }
            };
            poussr::cert::show(&files)?
        }
    };
    print!("{text}");
    Ok(())
}
