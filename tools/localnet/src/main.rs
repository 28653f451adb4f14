//! Test-only local Solana JSON-RPC endpoint: surfpool-core, offline, in memory.
//! Usage: per-localnet [--port 8899] [--ws-port <port+1>] [--slot-time-ms 400] [--verbose]
//!          [--airdrop <pubkey>:<lamports>]... [--program <program_id>:<path.so>]...
//! Prints exactly one stdout line `READY http://127.0.0.1:<port>` once getSlot answers.
use std::{io::{Read, Write}, net::TcpStream, str::FromStr, time::{Duration, Instant}};

use crossbeam_channel::{unbounded, RecvTimeoutError};
use solana_pubkey::Pubkey;
use surfpool_core::{
    runloops::start_local_surfnet_runloop,
    surfnet::{locker::SurfnetSvmLocker, svm::{SurfnetSvm, SurfnetSvmConfig}},
};
use surfpool_types::{RpcConfig, SimnetConfig, SimnetEvent, SurfpoolConfig};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn split<'a>(flag: &str, v: &'a str) -> Res<(&'a str, &'a str)> {
    v.split_once(':').ok_or_else(|| format!("{flag} expects <a>:<b>, got {v:?}").into())
}

fn pubkey(v: &str) -> Res<Pubkey> {
    Pubkey::from_str(v).map_err(|e| format!("bad pubkey {v:?}: {e}").into())
}

fn rpc_answers(port: u16) -> bool {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"getSlot"}"#;
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let mut out = String::new();
    s.write_all(req.as_bytes()).is_ok() && s.read_to_string(&mut out).is_ok() && out.contains("\"result\"")
}

fn main() -> Res<()> {
    let (mut port, mut ws_port, mut slot_time, mut verbose) = (8899u16, None, 400u64, false);
    let (mut airdrops, mut programs) = (Vec::<(Pubkey, u64)>::new(), Vec::<(Pubkey, Vec<u8>)>::new());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => port = val()?.parse()?,
            "--ws-port" => ws_port = Some(val()?.parse()?),
            "--slot-time-ms" => slot_time = val()?.parse()?,
            "--verbose" => verbose = true,
            "--airdrop" => { let v = val()?; let (k, l) = split(&flag, &v)?; airdrops.push((pubkey(k)?, l.parse()?)) }
            "--program" => {
                let v = val()?; let (id, path) = split(&flag, &v)?;
                programs.push((pubkey(id)?, std::fs::read(path).map_err(|e| format!("{path}: {e}"))?))
            }
            _ => return Err(format!("unknown argument {flag:?}").into()),
        }
    }
    let ws_port = ws_port.unwrap_or(port + 1);
    let config = SurfpoolConfig {
        simnets: vec![SimnetConfig { offline_mode: true, remote_rpc_url: None, slot_time, ..Default::default() }],
        rpc: RpcConfig { bind_host: "127.0.0.1".into(), bind_port: port, ws_port, ..Default::default() },
        ..Default::default()
    };
    let svm_config = SurfnetSvmConfig { slot_time, ..Default::default() };
    let (svm, events_rx, geyser_rx) = SurfnetSvm::new(svm_config)?; // no database: in memory
    let locker = SurfnetSvmLocker::new(svm);

    // Drain the (bounded) event channel on its own thread; forward the startup outcome.
    let (started_tx, started_rx) = unbounded::<Result<(), String>>();
    std::thread::spawn(move || for ev in events_rx.iter() {
        match ev {
            SimnetEvent::CoreStarted(_) => { let _ = started_tx.send(Ok(())); }
            SimnetEvent::Aborted(e) => { let _ = started_tx.send(Err(e)); }
            SimnetEvent::ErrorLog(_, m) => eprintln!("surfnet error: {m}"),
            SimnetEvent::WarnLog(_, m) if verbose => eprintln!("surfnet warn: {m}"),
            SimnetEvent::InfoLog(_, m) if verbose => eprintln!("surfnet: {m}"),
            _ => {}
        }
    });

    let rt = tokio::runtime::Runtime::new()?;
    for (pubkey, lamports) in &airdrops {
        let tx = locker.airdrop(pubkey, *lamports).map_err(|e| format!("airdrop {pubkey}: {e:?}"))?;
        tx.map_err(|e| format!("airdrop {pubkey}: {:?}", e.err))?;
    }
    for (program_id, elf) in &programs {
        rt.block_on(locker.write_program(*program_id, None, 0, elf, &None)).map_err(|e| format!("program {program_id}: {e}"))?;
    }

    let (cmd_tx, cmd_rx) = unbounded();
    let handle = rt.handle().clone();
    let runloop = std::thread::spawn(move || {
        handle.block_on(start_local_surfnet_runloop(locker, config, cmd_tx, cmd_rx, geyser_rx)).map_err(|e| e.to_string())
    });

    let t0 = Instant::now();
    match started_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("surfnet aborted: {e}").into()),
        Err(RecvTimeoutError::Timeout) => return Err("surfnet did not start within 30 s".into()),
        Err(RecvTimeoutError::Disconnected) => return Err(runloop.join().map_err(|_| "runloop panicked")?.err().unwrap_or_default().into()),
    }
    while !rpc_answers(port) {
        if t0.elapsed() > Duration::from_secs(30) { return Err(format!("RPC on 127.0.0.1:{port} never answered").into()); }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("READY http://127.0.0.1:{port}");
    std::io::stdout().flush()?;
    runloop.join().map_err(|_| "runloop panicked")??;
    Ok(())
}
