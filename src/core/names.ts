/**
 * User names become file names (ccd/<name>), certificate CNs and OpenVPN config lines, and
 * OpenVPN passes a CN through unchanged except for "/" — so the pattern is strict and checked
 * at every entry point. Letters, digits, ".", "_" and "-"; starts with a letter or digit;
 * 1–64 characters; not "." / ".." (already excluded by the first character rule) and not
 * "DEFAULT", the file name OpenVPN reads for clients without their own ccd file.
 */
export const USER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function userNameProblem(name: string): string | undefined {
  if (!USER_NAME_PATTERN.test(name)) {
    const shown = JSON.stringify(name);
    return `${shown} is not a valid user name: use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`;
  }
  if (name.toUpperCase() === 'DEFAULT')
    return '"DEFAULT" is reserved by OpenVPN for its default client config';
  return undefined;
}
