/**
 * Renders READMEs in one worker thread, one at a time, each within a time limit: a README that
 * takes longer (markdown-it is superlinear on inputs like `![` × 100k) is shown as escaped text,
 * and the worker is replaced. The request path never runs markdown-it itself.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import { readmeAsText } from './markdown.js';

const RENDER_TIMEOUT_MS = 5_000;

export class ReadmeRenderer {
  private worker: Worker | undefined;
  private nextId = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly pending = new Map<number, { worker: Worker; done: (html: string | undefined) => void }>();

  constructor(
    private readonly log?: Pick<Logger, 'warn'>,
    private readonly onRender: (result: 'html' | 'text') => void = () => {},
    private readonly timeoutMs = RENDER_TIMEOUT_MS,
  ) {}

  /** Safe HTML for `source`; never rejects. */
  render(source: string): Promise<string> {
    const job = this.queue.then(() => this.renderNow(source));
    this.queue = job.catch(() => undefined);
    return job;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  private renderNow(source: string): Promise<string> {
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise<string>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.log?.warn(
          { bytes: Buffer.byteLength(source), timeoutMs: this.timeoutMs },
          'README rendering took too long; showing it as text',
        );
        void this.replaceWorker(worker);
        this.onRender('text');
        resolve(readmeAsText(source));
      }, this.timeoutMs);
      this.pending.set(id, {
        worker,
        done: (html) => {
          clearTimeout(timer);
          this.onRender(html === undefined ? 'text' : 'html');
          resolve(html ?? readmeAsText(source));
        },
      });
      worker.postMessage({ id, source });
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./readme-worker.js', import.meta.url));
    worker.unref();
    worker.on('message', (m: { id: number; html: string | undefined }) => {
      const job = this.pending.get(m.id);
      this.pending.delete(m.id);
      job?.done(m.html);
    });
    worker.on('error', () => this.failAll(worker));
    worker.on('exit', () => this.failAll(worker));
    this.worker = worker;
    return worker;
  }

  /** A dead worker's job falls back to text. */
  private failAll(worker: Worker): void {
    if (this.worker === worker) this.worker = undefined;
    for (const [id, job] of this.pending) {
      if (job.worker !== worker) continue;
      this.pending.delete(id);
      job.done(undefined);
    }
  }

  private async replaceWorker(worker: Worker): Promise<void> {
    if (this.worker === worker) this.worker = undefined;
    await worker.terminate();
  }
}
