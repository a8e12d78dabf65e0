/** The page shell of running an org (admins): the tabs; each tab's content is its own module. */
import { html } from 'hono/html';
import { type Html, type PageContext, layout } from '../layout.js';

export type ManageTab = 'usage' | 'storage' | 'members' | 'tokens' | 'slices' | 'policies' | 'audit';

const TAB_LABELS: Record<ManageTab, string> = {
  usage: 'Cache usage',
  storage: 'Storage',
  members: 'Members & access',
  tokens: 'Tokens',
  slices: 'Slices',
  policies: 'Policies',
  audit: 'Audit log',
};

export function managePage(
  ctx: PageContext,
  org: string,
  tab: ManageTab,
  tabs: ManageTab[],
  body: Html,
  flash?: Html,
): Html {
  return layout(
    ctx,
    `${TAB_LABELS[tab]} · ${org}`,
    html`
    <nav class="crumbs" aria-label="Breadcrumb"><a href="/flakes/${org}">${org}</a> / Manage</nav>
    <h1>${org}</h1>
    <nav class="tabs" aria-label="Manage ${org}">
      ${tabs.map((t) => html`<a href="/manage/${org}${t === 'usage' ? '' : `/${t}`}"${t === tab ? html` aria-current="page"` : ''}>${TAB_LABELS[t]}</a>`)}
    </nav>
    ${flash ?? ''}
    ${body}`,
  );
}
