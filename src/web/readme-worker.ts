/** Worker thread entry: renders READMEs off the main event loop (see readme-renderer.ts). */
import { parentPort } from 'node:worker_threads';
import { renderMarkdown } from './markdown.js';

parentPort!.on('message', (job: { id: number; source: string }) => {
  let html: string | undefined;
  try {
    html = renderMarkdown(job.source);
  } catch {
    html = undefined;
  }
  parentPort!.postMessage({ id: job.id, html });
});
