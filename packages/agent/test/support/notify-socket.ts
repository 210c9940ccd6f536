import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * A fake systemd NOTIFY_SOCKET: Node cannot bind a Unix datagram socket, so a tiny python3
 * listener prints every datagram it receives, one per line.
 */
export async function startNotifySocket(path: string): Promise<{ messages: string[]; close: () => Promise<void> }> {
  const script = [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    `s.bind(${JSON.stringify(path)})`,
    'print("listening", flush=True)',
    'while True:',
    '    print(s.recv(4096).decode().replace("\\n", " "), flush=True)',
  ].join('\n');
  const child: ChildProcess = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line === 'listening') resolve();
      else messages.push(line);
    });
  });
  return {
    messages,
    close: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
