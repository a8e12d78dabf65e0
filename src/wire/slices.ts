/** The answer of `GET /api/v1/orgs/<org>/sources` (`floe slice list`): an org's slices and follows. */

/** Another org's slice this org's view follows. */
export interface Follow {
  org: string;
  slice: string;
  priority: number;
}

export interface SliceViewSettings {
  name: string;
  public: boolean;
  inView: boolean;
  priority: number;
  globalPriority: number | null;
  /** Slices (of the same org) whose paths may be linked into this one, besides `default`. */
  trusts: string[];
}

export interface OrgSources {
  slices: SliceViewSettings[];
  follows: Follow[];
}
