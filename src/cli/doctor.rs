pub fn run(_a: Args) -> crate::error::CommandResult<u8> {
    Ok(0)
}
#[derive(clap::Args, Debug)]
pub struct Args {}
