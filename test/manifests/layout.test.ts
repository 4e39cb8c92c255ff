import { readFile } from 'node:fs/promises';
import path from 'node:path';

import yaml from 'js-yaml';

import { repoRoot } from './kustomize.js';
import { manifestFiles, reachableFiles, type Role } from './layout.js';

describe('manifest layout', () => {
  let files: string[];
  let reached: Map<string, Set<Role>>;

  beforeAll(async () => {
    files = await manifestFiles();
    reached = await reachableFiles();
  });

  it('reaches every yaml file under knative/, kustomize/ and istio/ from a kustomization', () => {
    expect(files.length).toBeGreaterThan(20);
    expect(files.filter((f) => !reached.has(f))).toEqual([]);
  });

  it('references only files that exist', () => {
    expect([...reached.keys()].filter((f) => !files.includes(f))).toEqual([]);
  });

  it('keeps one resource per file', async () => {
    for (const [file, roles] of reached) {
      if (!roles.has('resource')) continue;
      const docs = yaml.loadAll(await readFile(path.join(repoRoot, file), 'utf8')).filter((d) => d != null);
      expect({ file, documents: docs.length }).toEqual({ file, documents: 1 });
      expect(docs[0]).toEqual(
        expect.objectContaining({
          apiVersion: expect.any(String) as string,
          kind: expect.any(String) as string,
        }),
      );
    }
  });

  it('uses every file in one role only (a patch is never also a resource)', () => {
    for (const [file, roles] of reached)
      expect({ file, roles: [...roles] }).toEqual({ file, roles: [[...roles][0]] });
  });
});
