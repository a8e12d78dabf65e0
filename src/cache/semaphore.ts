/**
 * A semaphore shared by groups (orgs) and, within a group, by members (tokens), that none of them
 * can monopolize: at most `limit` holders in all, `perGroup` per group and `perMember` per member.
 * A freed slot goes to the next group in turn that is waiting (round robin over groups) and, in
 * that group, to the next member in turn (round robin over members, first come first served within
 * one). One org's queue of stalled uploads therefore delays another org's upload by at most one
 * turn, and one token's stalled uploads leave its org's other tokens a slot (perMember < perGroup).
 * Callers queue rather than being refused (a 429 or 5xx makes old Nix retry a PUT without its body).
 */
export class FairSemaphore {
  private active = 0;
  private readonly activeBy = new Map<string, number>();
  private readonly activeByMember = new Map<string, number>();
  /**
   * Waiters per group, then per member; both Maps' orders are turn orders (a served group moves
   * to the end of the groups, a served member to the end of its group's members).
   */
  private readonly queues = new Map<string, Map<string, Array<() => void>>>();

  constructor(
    readonly limit: number,
    readonly perGroup: number,
    readonly perMember: number = perGroup,
  ) {
    if (limit < 1 || perGroup < 1 || perMember < 1) throw new RangeError('limits must be at least 1');
  }

  /** Runs `work` holding a slot of `group`, as `member` (one member everywhere when not given). */
  async run<T>(group: string, work: () => Promise<T>, member = ''): Promise<T> {
    await this.acquire(group, member);
    try {
      return await work();
    } finally {
      this.release(group, member);
    }
  }

  /** Holders now, in all, of one group, or of one member of a group. */
  running(group?: string, member?: string): number {
    if (group === undefined) return this.active;
    if (member === undefined) return this.activeBy.get(group) ?? 0;
    return this.activeByMember.get(memberKey(group, member)) ?? 0;
  }

  /** Callers waiting, in all, of one group, or of one member of a group. */
  waiting(group?: string, member?: string): number {
    let n = 0;
    for (const [g, members] of this.queues) {
      if (group !== undefined && g !== group) continue;
      for (const [m, q] of members) if (member === undefined || m === member) n += q.length;
    }
    return n;
  }

  private canRun(group: string, member: string): boolean {
    return this.running(group) < this.perGroup && this.running(group, member) < this.perMember;
  }

  private acquire(group: string, member: string): Promise<void> {
    // Nobody of this group waits ahead, and there is room: start at once.
    if (!this.queues.has(group) && this.active < this.limit && this.canRun(group, member)) {
      this.grant(group, member);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      let members = this.queues.get(group);
      if (!members) this.queues.set(group, (members = new Map()));
      const q = members.get(member);
      if (q) q.push(resolve);
      else members.set(member, [resolve]);
      this.pump();
    });
  }

  private release(group: string, member: string): void {
    this.active--;
    const n = this.running(group) - 1;
    if (n > 0) this.activeBy.set(group, n);
    else this.activeBy.delete(group);
    const key = memberKey(group, member);
    const m = this.running(group, member) - 1;
    if (m > 0) this.activeByMember.set(key, m);
    else this.activeByMember.delete(key);
    this.pump();
  }

  private grant(group: string, member: string): void {
    this.active++;
    this.activeBy.set(group, this.running(group) + 1);
    this.activeByMember.set(memberKey(group, member), this.running(group, member) + 1);
  }

  /** Hands free slots to waiting groups in turn, and within one to its members in turn, skipping any at their limit. */
  private pump(): void {
    while (this.active < this.limit) {
      let next: { group: string; member: string } | undefined;
      for (const [group, members] of this.queues) {
        if (this.running(group) >= this.perGroup) continue;
        for (const [member] of members) {
          if (this.running(group, member) < this.perMember) {
            next = { group, member };
            break;
          }
        }
        if (next) break;
      }
      if (next === undefined) return;
      const members = this.queues.get(next.group)!;
      const q = members.get(next.member)!;
      const resolve = q.shift()!;
      members.delete(next.member);
      if (q.length > 0) members.set(next.member, q); // to the back of the group's turn order
      this.queues.delete(next.group);
      if (members.size > 0) this.queues.set(next.group, members); // to the back of the turn order
      this.grant(next.group, next.member);
      resolve();
    }
  }
}

function memberKey(group: string, member: string): string {
  return `${group}\u0000${member}`;
}
