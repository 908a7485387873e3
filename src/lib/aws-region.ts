/** Region names as AWS spells them (us-east-1, eu-central-2, us-gov-west-1, ap-southeast-5): one pattern for every check. */
export const REGION_NAME = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$/;
