/** Reading fleet files (contract §5): JSON or YAML whatever the file is called, the Name tag as the name. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FleetError, loadFleetFile, parseFleet } from '../../src/local/fleet.ts';
import { worldFromFleet } from '../../src/local/world.ts';

const dir = mkdtempSync(join(tmpdir(), 'vss-fleet-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('loadFleetFile', () => {
  it.each(['fleet.txt', 'fleet', 'fleet.json'])('reads a YAML fleet named %s', (name) => {
    const fleet = loadFleetFile(file(name, 'instances:\n  - name: web-01\n    attempts: [vss-timeout, ok]\n'));

    expect(fleet.instances[0]).toMatchObject({ name: 'web-01', attempts: ['vss-timeout', 'ok'] });
  });

  it('reads JSON in a .yaml file and JSON without an extension', () => {
    expect(loadFleetFile(file('j.yaml', '{"instances": [{"name": "a"}]}')).instances[0]?.name).toBe('a');
    expect(loadFleetFile(file('j', '{"instances": [{"name": "b"}]}')).instances[0]?.name).toBe('b');
  });

  it.each([
    ['broken JSON', 'broken.json', '{"instances": ['],
    ['plain text', 'plain.txt', 'hello'],
    ['broken YAML', 'broken.yml', 'instances: [\n'],
  ])('rejects %s with a FleetError', (_what, name, text) => {
    expect(() => loadFleetFile(file(name, text))).toThrow(FleetError);
  });
});

describe('parseFleet', () => {
  it('takes the name from a Name tag, so the world dump names the instance the report names', () => {
    const fleet = parseFleet({ instances: [{ instanceId: 'i-0123456789abcdef0', tags: { ConsistentSnapshot: 'WindowsVSS', Name: 'sql-01' } }] });
    const dump = worldFromFleet(fleet).dump();

    expect(fleet.instances[0]?.name).toBe('sql-01');
    expect(dump.instances[0]).toMatchObject({ name: 'sql-01', tags: { ConsistentSnapshot: 'WindowsVSS', Name: 'sql-01' } });
  });

  it('keeps an explicit name over a Name tag', () => {
    expect(parseFleet({ instances: [{ name: 'a', tags: { Name: 'b' } }] }).instances[0]?.name).toBe('a');
  });
});

describe('worldFromFleet', () => {
  it('never gives a generated id to an instance when the fleet gives that id to another one', () => {
    const generated = worldFromFleet(parseFleet({ instances: [{ name: 'gen' }] })).dump().instances[0]?.instanceId as string;
    const dump = worldFromFleet(parseFleet({ instances: [{ name: 'gen' }, { name: 'given', instanceId: generated }] })).dump();

    expect(dump.instances).toHaveLength(2);
    expect(dump.instances.find((i) => i.name === 'given')?.instanceId).toBe(generated);
    expect(dump.instances.find((i) => i.name === 'gen')?.instanceId).not.toBe(generated);
    const owners = dump.volumes.map((v) => v.instanceId);
    expect(new Set(owners).size).toBe(2);
  });
});
