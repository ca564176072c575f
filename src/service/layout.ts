/** The files of a fleet directory. */
import { join } from 'node:path';

export const SPEC_FILE = 'fleet.yaml';
export const STORE_FILE = 'fleet.db';
/** fleet.yaml holds routing keys and BGP passwords: its owner's only. */
export const SPEC_FILE_MODE = 0o600;

export const specPath = (dir: string): string => join(dir, SPEC_FILE);
export const storePath = (dir: string): string => join(dir, STORE_FILE);
